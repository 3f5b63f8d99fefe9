// Package bgp announces the load-balancer addresses a node owns to routers
// over BGP, with an embedded gobgp (v4) server, so that the routers spread
// traffic over every announcing node with ECMP.
//
// Election is not this package's job: in bgp mode every eligible node
// announces, and the speaker hands the complete set to
// [Speaker.SetAnnounced].
//
// # Sessions
//
// The node dials out to each router whose nodeSelector matches it (no
// listener, so no privilege, unless bgp.listenPort is set). Each session
// carries the family of the router's address only: IPv4 routes go over IPv4
// sessions and IPv6 routes over IPv6 ones, because the next hop is the
// session's local address (gobgp's behaviour for locally originated routes
// with an unspecified next hop, towards eBGP and iBGP peers alike), which is
// exactly the node's address on the router's network. Peers are added,
// updated and deleted live; only a change of localASN, routerID or
// listenPort restarts gobgp. Routes the routers send are refused by an
// import policy: the node needs none, and gobgp would otherwise re-advertise
// one router's routes to the others. gobgp keeps tables for IPv4 and IPv6
// unicast only (its default, every family, costs ~10 MiB). Connection
// retries are every 5 s instead of gobgp's 120 s; after a session ends gobgp
// waits a fixed 5 s before reconnecting, so a restarted router gets the
// routes back about 7 s after it returns.
//
// # Routes
//
// Each address is announced as a /32 or /128, or as the aggregate its
// pool's advertisement asks for (announced while any address in it is),
// with ORIGIN IGP, the advertisement's communities and large communities,
// and its LOCAL_PREF (gobgp strips LOCAL_PREF towards eBGP peers). An
// address no longer wanted is withdrawn at once; Stop withdraws everything
// and closes the sessions with a Cease NOTIFICATION, which makes routers drop
// the node's routes even when graceful restart is on.
//
// # Session state
//
// OnPeerState reports each session's state with a reason meant for an
// Event. gobgp v4 reports a session's end as a peer state event (with the
// NOTIFICATION code as text), but failures before the router's OPEN is
// accepted only in its log: its outgoing connection manager retries them
// silently. The Speaker therefore gives gobgp an slog handler that forwards
// to klog and extracts, per peer, the connect error ("i/o timeout" for a TCP
// MD5 password mismatch: the router's kernel drops the SYN; "connection
// refused") and the NOTIFICATIONs the node sends (Bad Peer AS when the
// router's AS is not the configured one). When the router refuses the
// node's OPEN before sending its own, gobgp drops the router's NOTIFICATION
// and only logs the FSM error it answers with; the reason says so.
//
// # BFD
//
// A peer's bfd block enables gobgp's BFD (RFC 5880 asynchronous mode, single
// hop, UDP 3784, TTL 255), with the given intervals and multiplier. When BFD
// declares the router down, gobgp resets the session; the router's BFD, in
// turn, takes the node's routes away within its detection time when the node
// or its link dies.
package bgp
