// Package routers runs the routing daemons ironlb is proven against, FRR and
// BIRD 2, inside a router of a network lab (test/netlab), and reads back what
// they learned: BGP paths with their attributes, session states and, for
// FRR, the routes zebra installed in the router's kernel.
//
// The announcer/bgp tests (one gobgp speaker per node, driven directly), the
// end-to-end tests (the real ironlb-speaker) and the demo (make demo) all run
// their routers here.
//
// Each daemon runs in the foreground as a child of the caller, inside the
// router's namespace, with its configuration, pid files and control sockets
// in a private directory; Close stops it and removes the directory. The
// *ForTest variants tie both to a test and log the daemons' output when the
// test failed. hack/ensure-deps.sh installs the daemons (frr, bird2); a
// missing one is an error, never a skip.
package routers
