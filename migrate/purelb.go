package migrate

import (
	"strings"

	"github.com/ironlb/ironlb/config"
)

// PureLB (purelb.io/v1 and v2): each ServiceGroup becomes a pool of mode
// vip. PureLB puts a "local" address on the LAN interface of one node when
// it is on the node's subnet, and on the kube-lb0 dummy of every node for a
// routing daemon otherwise: ironlb's vip mode does exactly that (with its
// ironlb0 dummy).

// purelbDefaultGroup is the ServiceGroup PureLB allocates from when a
// Service names none.
const purelbDefaultGroup = "default"

type purelbReader struct {
	r     *report
	pools []*draftPool
	// local marks the pools of local addresses, which an LBNodeAgent's
	// interface applies to.
	local map[*draftPool]bool
}

func readPureLB(objs []*object, r *report) *drafts {
	pr := &purelbReader{r: r, local: map[*draftPool]bool{}}
	var agents []*object
	for _, o := range objs {
		switch {
		case o.group() != purelbGroup:
			skip(r, PureLB, o)
		case o.version() != "v1" && o.version() != "v2":
			r.drop(o.ref(), "", "%s is not read, only purelb.io/v1 and v2", o.APIVersion)
		case o.Kind == "ServiceGroup":
			pr.group(o)
		case o.Kind == "LBNodeAgent":
			agents = append(agents, o)
		default:
			skip(r, PureLB, o)
		}
	}
	for i, o := range agents {
		if i == 0 {
			pr.agent(o)
		} else {
			r.drop(o.ref(), "", "only one LBNodeAgent is read, %s; skipped", agents[0].ref())
		}
	}
	if len(agents) == 0 && len(pr.pools) > 0 {
		r.note(pr.pools[0].ref, "", "PureLB put addresses that are on no node subnet on kube-lb0 for a routing daemon; ironlb puts them on ironlb0: make the daemon (BIRD, FRR) export the routes of ironlb0 instead")
	}
	return &drafts{pools: pr.pools}
}

func (pr *purelbReader) group(o *object) {
	ref := o.ref()
	f := newFields(pr.r, ref, "spec", o.Spec)
	defer f.done()
	for _, key := range []string{"netbox", "external", "epic"} {
		f.drop(key, "addresses come from an external IPAM system, which ironlb does not query; not carried over")
	}
	p := &draftPool{ref: ref, pool: config.PoolFile{Name: o.Metadata.Name, Mode: config.ModeVIP}}
	local, remote := f.set("local"), f.set("remote")
	if !local && !remote {
		if !f.set("netbox") && !f.set("external") && !f.set("epic") {
			pr.r.drop(ref, "spec", "has neither local nor remote addresses; not carried over")
		}
		return
	}
	if local {
		pr.addresses(p, f.object("local"))
		pr.local[p] = true
	}
	if remote {
		pr.addresses(p, f.object("remote"))
		pr.r.note(ref, "spec.remote", "ironlb's vip mode puts addresses that are on no node subnet on every node's ironlb0 dummy, like PureLB's kube-lb0; an address on a node subnet goes on that interface of one node instead")
	}
	if o.Metadata.Name != purelbDefaultGroup {
		p.pool.AutoAssign = new(bool)
		pr.r.note(ref, "", "PureLB hands out addresses unasked from the ServiceGroup named %s only; this pool has autoAssign: false to keep it so", purelbDefaultGroup)
	}
	pr.pools = append(pr.pools, p)
}

// addresses reads the pools of a local or remote block: v4pool, v6pool,
// v4pools, v6pools, and the single-stack subnet/pool/aggregation of v1.
func (pr *purelbReader) addresses(p *draftPool, f *fields) {
	pr.pool(p, f)
	for _, key := range []string{"v4pool", "v6pool"} {
		if f.set(key) {
			pr.pool(p, f.object(key))
		} else {
			f.ignore(key)
		}
	}
	for _, key := range []string{"v4pools", "v6pools"} {
		for _, item := range f.list(key) {
			pr.pool(p, item)
		}
	}
	f.drop("skipIPv6DAD", "ironlb has no equivalent; not carried over")
}

// pool reads one pool/subnet/aggregation triple. The subnet is not needed:
// ironlb finds the nodes' subnets itself.
func (pr *purelbReader) pool(p *draftPool, f *fields) {
	var addr, aggregation string
	if f.get("pool", &addr) && addr != "" {
		p.addAddress(pr.r, f.at("pool"), addr)
	}
	f.ignore("subnet")
	if f.get("aggregation", &aggregation) && aggregation != "" && aggregation != "default" {
		pr.r.drop(p.ref, f.at("aggregation"), "%s: ironlb's vip mode adds each address alone (/32, /128); not carried over: announce the aggregate from the routing daemon if you need it", aggregation)
	}
}

// agent reads the LBNodeAgent: the local interface, when it is one name.
func (pr *purelbReader) agent(o *object) {
	ref := o.ref()
	f := newFields(pr.r, ref, "spec", o.Spec)
	defer f.done()
	local := f.object("local")
	var iface, dummy string
	for _, key := range []string{"localint", "localInterface"} {
		if local.get(key, &iface) && iface != "" && iface != "default" {
			pr.localInterface(ref, local.at(key), iface)
		}
	}
	for _, key := range []string{"extlbint", "dummyInterface"} {
		local.get(key, &dummy)
	}
	if dummy == "" {
		dummy = "kube-lb0"
	}
	pr.r.note(ref, "spec.local", "PureLB put addresses that are on no node subnet on %s for a routing daemon; ironlb puts them on ironlb0: make the daemon (BIRD, FRR) export the routes of ironlb0 instead", dummy)
	local.ignore("interfaces") // ironlb already looks at every interface's subnets
	local.drop("garpConfig", "ironlb sends gratuitous ARP on its own schedule; not carried over")
	local.drop("addressConfig", "ironlb adds addresses its own way; not carried over")
	f.drop("epic", "ironlb has no equivalent; not carried over")
}

// localInterface applies the LBNodeAgent's local interface to the pools of
// local addresses, when it names one interface rather than a pattern.
func (pr *purelbReader) localInterface(ref Ref, field, iface string) {
	if strings.ContainsAny(iface, `*+?[](){}|^$\`) {
		pr.r.drop(ref, field, "%q is a pattern; ironlb names interfaces exactly, and by default announces on the interface whose subnet holds the address; not carried over", iface)
		return
	}
	var names []string
	for _, p := range pr.pools {
		if pr.local[p] {
			p.pool.Interfaces = []string{iface}
			names = append(names, p.pool.Name)
		}
	}
	if len(names) > 0 {
		pr.r.note(ref, field, "%s is the interface of pools %s; with an interface named, ironlb puts even addresses on no node subnet there, on one node, rather than on a dummy interface",
			iface, strings.Join(names, ", "))
	}
}
