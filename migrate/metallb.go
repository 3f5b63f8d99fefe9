package migrate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// MetalLB (metallb.io): IPAddressPools become pools; the L2Advertisements
// and BGPAdvertisements that select a pool give it its mode, interfaces and
// nodes; BGPPeers, Communities and BFDProfiles make the bgp section.

// mlbPool is an IPAddressPool being read.
type mlbPool struct {
	obj   *object
	draft *draftPool
	// priority is serviceAllocation.priority, 0 when unset.
	priority int64
}

// mlbAdv is an L2Advertisement or BGPAdvertisement: the pools it selects
// and the nodes it announces from.
type mlbAdv struct {
	obj *object
	bgp bool
	// choosesPools is false when the advertisement announces every pool.
	choosesPools bool
	poolNames    []string
	poolSels     []labels.Selector
	nodeSels     []metav1.LabelSelector
	ifaces       []string
	// draft is a BGPAdvertisement's advertisement.
	draft *draftAdv
}

type metallbReader struct {
	r           *report
	pools       []*mlbPool
	advs        []*mlbAdv
	communities map[string]string // alias -> value
	bfd         map[string]*config.BFDFile
	bgp         *draftBGP
}

func readMetalLB(objs []*object, r *report) *drafts {
	m := &metallbReader{r: r, communities: map[string]string{}, bfd: map[string]*config.BFDFile{}}
	// Communities and BFD profiles first: advertisements and peers refer to
	// them by name, wherever they come in the input.
	for _, o := range objs {
		if o.group() != metallbGroup {
			continue
		}
		switch o.Kind {
		case "Community":
			m.readCommunity(o)
		case "BFDProfile":
			m.bfdProfile(o)
		}
	}
	var peers []*object
	for _, o := range objs {
		if o.group() != metallbGroup {
			skip(r, MetalLB, o)
			continue
		}
		switch o.Kind {
		case "IPAddressPool":
			m.pool(o)
		case "L2Advertisement":
			m.adv(o, false)
		case "BGPAdvertisement":
			m.adv(o, true)
		case "BGPPeer":
			peers = append(peers, o)
		case "Community", "BFDProfile":
		case "AddressPool":
			r.drop(o.ref(), "", "the AddressPool of MetalLB v0.12 is not read: it is deprecated; convert it to an IPAddressPool and advertisements, then import those")
		default:
			skip(r, MetalLB, o)
		}
	}
	m.peers(peers)
	m.priorities()
	m.modes()
	d := &drafts{bgp: m.bgp, bgpHint: "pass the BGPPeer resources too: their myASN is ironlb's localASN"}
	for _, p := range m.pools {
		d.pools = append(d.pools, p.draft)
	}
	return d
}

func (m *metallbReader) pool(o *object) {
	f := newFields(m.r, o.ref(), "spec", o.Spec)
	defer f.done()
	p := &mlbPool{obj: o, draft: &draftPool{ref: o.ref(), pool: config.PoolFile{Name: o.Metadata.Name}}}
	var addrs []string
	f.get("addresses", &addrs)
	for i, a := range addrs {
		p.draft.addAddress(m.r, fmt.Sprintf("spec.addresses[%d]", i), a)
	}
	var auto bool
	if f.get("autoAssign", &auto) && !auto {
		p.draft.pool.AutoAssign = &auto
	}
	f.get("avoidBuggyIPs", &p.draft.pool.AvoidBuggyIPs)

	sa := f.object("serviceAllocation")
	sa.get("priority", &p.priority)
	var namespaces []string
	var nsSels, svcSels []metav1.LabelSelector
	sa.get("namespaces", &namespaces)
	sa.get("namespaceSelectors", &nsSels)
	sa.get("serviceSelectors", &svcSels)
	if sa.failed("namespaces", "namespaceSelectors", "serviceSelectors") {
		m.r.drop(o.ref(), "", "its serviceAllocation cannot be read, and leaving it out would open the pool to every Service; the pool is not carried over")
		f.discard()
		return
	}
	m.namespaces(p.draft, sa, namespaces, nsSels)
	if sel, ok := anyOf(svcSels); ok {
		p.draft.pool.ServiceSelector = sel
	} else {
		p.draft.pool.ServiceSelector = &svcSels[0]
		m.r.drop(o.ref(), sa.at("serviceSelectors"), "MetalLB admits a Service matching any of these selectors; ironlb takes one, so only the first (%s) is kept: Services matching only the others can no longer use the pool",
			metav1.FormatLabelSelector(&svcSels[0]))
	}
	m.pools = append(m.pools, p)
}

// namespaces carries serviceAllocation's namespaces and namespaceSelectors,
// which MetalLB ORs (a namespace listed, or matching any selector), where
// ironlb's namespaces and namespaceSelector must both admit a namespace.
func (m *metallbReader) namespaces(p *draftPool, sa *fields, namespaces []string, sels []metav1.LabelSelector) {
	switch {
	case len(sels) == 0:
		p.pool.Namespaces = namespaces
	case len(namespaces) == 0:
		if sel, ok := anyOf(sels); ok {
			p.pool.NamespaceSelector = sel
			return
		}
		p.pool.NamespaceSelector = &sels[0]
		m.r.drop(p.ref, sa.at("namespaceSelectors"), "MetalLB admits a namespace matching any of these selectors; ironlb takes one, so only the first (%s) is kept: namespaces matching only the others can no longer use the pool",
			metav1.FormatLabelSelector(&sels[0]))
	default:
		// Namespace names are a label too, so the two ORed can sometimes be
		// one selector.
		if sel, ok := anyOf(append([]metav1.LabelSelector{namespacesSelector(namespaces)}, sels...)); ok {
			p.pool.NamespaceSelector = sel
			return
		}
		p.pool.Namespaces = namespaces
		m.r.drop(p.ref, sa.at("namespaceSelectors"), "MetalLB admits a namespace that is listed or matches a selector; ironlb requires both, so only the list is kept: namespaces that matched only a selector can no longer use the pool")
	}
}

func (m *metallbReader) adv(o *object, bgp bool) {
	f := newFields(m.r, o.ref(), "spec", o.Spec)
	defer f.done()
	a := &mlbAdv{obj: o, bgp: bgp}
	f.get("ipAddressPools", &a.poolNames)
	var poolSels []metav1.LabelSelector
	f.get("ipAddressPoolSelectors", &poolSels)
	// Naming or selecting no pool means every pool: one whose choice cannot
	// be read (reported) must not come to mean that.
	a.choosesPools = len(a.poolNames) > 0 || len(poolSels) > 0 || f.failed("ipAddressPools", "ipAddressPoolSelectors")
	for i := range poolSels {
		sel, err := metav1.LabelSelectorAsSelector(&poolSels[i])
		if err != nil {
			m.r.drop(o.ref(), fmt.Sprintf("spec.ipAddressPoolSelectors[%d]", i), "%v; not carried over", err)
			continue
		}
		a.poolSels = append(a.poolSels, sel)
	}
	f.get("nodeSelectors", &a.nodeSels)
	if bgp {
		a.draft = m.bgpAdv(o, f)
	} else {
		f.get("interfaces", &a.ifaces)
	}
	m.advs = append(m.advs, a)
}

// selects reports whether a announces p: by name, by label, or every pool
// when it names and selects none.
func (a *mlbAdv) selects(p *mlbPool) bool {
	if a.obj.Metadata.Namespace != p.obj.Metadata.Namespace {
		return false
	}
	if !a.choosesPools {
		return true
	}
	if slices.Contains(a.poolNames, p.obj.Metadata.Name) {
		return true
	}
	return slices.ContainsFunc(a.poolSels, func(s labels.Selector) bool { return s.Matches(labels.Set(p.obj.Metadata.Labels)) })
}

// priorities turns MetalLB's priorities (1 first, unset last) into
// ironlb's (highest first, 0 last).
func (m *metallbReader) priorities() {
	var set []int64
	for _, p := range m.pools {
		if p.priority > 0 {
			set = append(set, p.priority)
		}
	}
	ranks := rankPriorities(set)
	for _, p := range m.pools {
		switch {
		case p.priority > 0:
			p.draft.pool.Priority = ranks[p.priority]
			m.r.note(p.draft.ref, "spec.serviceAllocation.priority", "%d becomes priority %d: MetalLB tries the lowest number first, ironlb the highest", p.priority, ranks[p.priority])
		case p.priority < 0:
			m.r.note(p.draft.ref, "spec.serviceAllocation.priority", "%d is read as unset (tried last), as MetalLB documents no meaning for it", p.priority)
		}
	}
}

// modes gives each pool the mode, nodes and interfaces of the
// advertisements that select it.
func (m *metallbReader) modes() {
	m.unknownPoolNames()
	for _, p := range m.pools {
		var l2, bgp []*mlbAdv
		for _, a := range m.advs {
			switch {
			case !a.selects(p):
			case a.bgp:
				bgp = append(bgp, a)
			default:
				l2 = append(l2, a)
			}
		}
		switch {
		case len(bgp) > 0:
			m.bgpMode(p, bgp, l2)
		case len(l2) > 0:
			m.l2Mode(p, l2)
		default:
			p.draft.pool.Mode = config.ModeLayer2
			m.r.note(p.draft.ref, "", "no L2Advertisement or BGPAdvertisement selects it, so MetalLB allocated its addresses without announcing them; ironlb announces every pool, this one in layer2 mode: change its mode if that is wrong")
		}
	}
}

func (m *metallbReader) bgpMode(p *mlbPool, bgp, l2 []*mlbAdv) {
	name := p.obj.Metadata.Name
	p.draft.pool.Mode = config.ModeBGP
	p.draft.adv = bgp[0].draft
	for _, a := range l2 {
		m.r.drop(a.obj.ref(), "", "selects pool %s, which %s announces over BGP; ironlb announces a pool one way and takes bgp, so this L2Advertisement does not apply to it", name, bgp[0].obj.ref())
	}
	for _, a := range bgp[1:] {
		m.r.drop(a.obj.ref(), "", "selects pool %s, which %s already announces; ironlb has one advertisement per pool, so this one's settings do not apply to it", name, bgp[0].obj.ref())
	}
	m.nodes(p, bgp[:1])
}

func (m *metallbReader) l2Mode(p *mlbPool, l2 []*mlbAdv) {
	p.draft.pool.Mode = config.ModeLayer2
	m.nodes(p, l2)
	var ifaces []string
	for _, a := range l2 {
		if len(a.ifaces) == 0 {
			return // one announces on every interface, so the union does too
		}
		for _, i := range a.ifaces {
			if !slices.Contains(ifaces, i) {
				ifaces = append(ifaces, i)
			}
		}
	}
	p.draft.pool.Interfaces = ifaces
}

// nodes sets the pool's nodeSelector to the nodes any of advs announces
// from.
func (m *metallbReader) nodes(p *mlbPool, advs []*mlbAdv) {
	var sels []metav1.LabelSelector
	for _, a := range advs {
		if len(a.nodeSels) == 0 {
			return // from every node
		}
		sels = append(sels, a.nodeSels...)
	}
	if sel, ok := anyOf(sels); ok {
		p.draft.pool.NodeSelector = sel
		return
	}
	p.draft.pool.NodeSelector = &sels[0]
	m.r.drop(advs[0].obj.ref(), "spec.nodeSelectors", "for pool %s: MetalLB announces from a node matching any of these selectors; ironlb takes one, so only the first (%s) is kept: nodes matching only the others no longer announce",
		p.obj.Metadata.Name, metav1.FormatLabelSelector(&sels[0]))
}

// unknownPoolNames notes advertisements naming pools not in the input,
// most often a file left out.
func (m *metallbReader) unknownPoolNames() {
	for _, a := range m.advs {
		for i, name := range a.poolNames {
			if !slices.ContainsFunc(m.pools, func(p *mlbPool) bool {
				return p.obj.Metadata.Name == name && p.obj.Metadata.Namespace == a.obj.Metadata.Namespace
			}) {
				m.r.note(a.obj.ref(), fmt.Sprintf("spec.ipAddressPools[%d]", i), "names IPAddressPool %s, which is not in the input", name)
			}
		}
	}
}
