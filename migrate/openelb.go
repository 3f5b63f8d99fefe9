package migrate

import (
	"encoding/json"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
)

// OpenELB (network.kubesphere.io/v1alpha2): each Eip becomes a pool, its
// protocol the mode; the BgpConf named default and the BgpPeers make the
// bgp section.

// openelbDefaultEip marks the Eip Services get addresses from unasked.
const openelbDefaultEip = "eip.openelb.kubesphere.io/is-default-eip"

type oelbEip struct {
	draft *draftPool
	// priority ranks namespace-bound Eips, the lowest number first.
	priority int64
	// auto: OpenELB hands out its addresses unasked.
	auto, isDefault bool
}

type openelbReader struct {
	r        *report
	eips     []*oelbEip
	bgp      *draftBGP
	graceful bool
}

func readOpenELB(objs []*object, r *report) *drafts {
	o := &openelbReader{r: r}
	var peers []*object
	for _, obj := range objs {
		switch {
		case obj.group() != openelbGroup:
			skip(r, OpenELB, obj)
		case obj.version() != "v1alpha2":
			r.drop(obj.ref(), "", "%s is not read, only network.kubesphere.io/v1alpha2, the version OpenELB stores: get it from the cluster in that version", obj.APIVersion)
		case obj.Kind == "Eip":
			o.eip(obj)
		case obj.Kind == "BgpConf":
			o.conf(obj)
		case obj.Kind == "BgpPeer":
			peers = append(peers, obj)
		default:
			skip(r, OpenELB, obj)
		}
	}
	for _, obj := range peers {
		o.peer(obj)
	}
	o.priorities()
	d := &drafts{bgp: o.bgp, bgpHint: "pass the BgpConf named default too: its spec.as is ironlb's localASN"}
	for _, e := range o.eips {
		d.pools = append(d.pools, e.draft)
	}
	return d
}

func (o *openelbReader) eip(obj *object) {
	ref := obj.ref()
	f := newFields(o.r, ref, "spec", obj.Spec)
	defer f.done()
	e := &oelbEip{draft: &draftPool{ref: ref, pool: config.PoolFile{Name: obj.Metadata.Name}}}
	p := &e.draft.pool
	var addr, protocol, iface string
	if f.get("address", &addr) {
		e.draft.addAddress(o.r, "spec.address", addr)
	}
	f.get("protocol", &protocol)
	switch protocol {
	case "", "bgp":
		p.Mode = config.ModeBGP
	case "layer2":
		p.Mode = config.ModeLayer2
	case "vip":
		p.Mode = config.ModeVIP
	default:
		o.r.drop(ref, "spec.protocol", "%q is not a protocol OpenELB knows (bgp, layer2, vip); the Eip is not carried over", protocol)
		f.discard()
		return
	}
	if f.get("interface", &iface) && iface != "" {
		switch {
		case p.Mode == config.ModeBGP:
			o.r.note(ref, "spec.interface", "OpenELB ignores it in bgp mode; not carried over")
		case strings.HasPrefix(iface, "can_reach:"):
			o.r.note(ref, "spec.interface", "%s: ironlb announces on the interface whose subnet holds the address on each node, which is what can_reach finds for addresses on the nodes' subnet; not carried over", iface)
		default:
			p.Interfaces = []string{iface}
		}
	}
	var disabled bool
	f.get("disable", &disabled)
	f.get("priority", &e.priority)
	var namespaces []string
	f.get("namespaces", &namespaces)
	nsSel := o.namespaceSelector(f)
	if f.failed("namespaces", "namespaceSelector") {
		o.r.drop(ref, "", "its namespaces cannot be read, and leaving them out would open the pool to every namespace; the Eip is not carried over")
		f.discard()
		return
	}
	e.isDefault = obj.Metadata.Annotations[openelbDefaultEip] == "true"
	bound := len(namespaces) > 0 || nsSel != nil
	e.auto = (e.isDefault || bound) && !disabled
	o.namespaces(e.draft, namespaces, nsSel)
	f.drop("usingKnownIPs", "ironlb has no equivalent; not carried over")
	switch {
	case disabled:
		p.AutoAssign = new(bool)
		o.r.drop(ref, "spec.disable", "OpenELB stopped handing out the Eip's addresses to new Services; ironlb has no such switch. The pool has autoAssign: false, so only Services that name it or request one of its addresses get them")
	case !e.auto:
		p.AutoAssign = new(bool)
		o.r.note(ref, "", "is neither the default Eip (%s) nor bound to namespaces, so OpenELB gave its addresses only to Services that asked for it; the pool has autoAssign: false to keep it so", openelbDefaultEip)
	}
	o.eips = append(o.eips, e)
}

// namespaceSelector reads spec.namespaceSelector: OpenELB documents it as a
// map of labels; a label selector object is read too.
func (o *openelbReader) namespaceSelector(f *fields) *metav1.LabelSelector {
	var raw map[string]json.RawMessage
	if !f.get("namespaceSelector", &raw) || len(raw) == 0 {
		return nil
	}
	// One that cannot be read is reported and binds nothing: it must not
	// become an empty selector, which would admit every namespace.
	sel := &metav1.LabelSelector{}
	_, hasLabels := raw["matchLabels"]
	_, hasExprs := raw["matchExpressions"]
	if hasLabels || hasExprs {
		if !f.get("namespaceSelector", sel) {
			return nil
		}
	} else if !f.get("namespaceSelector", &sel.MatchLabels) {
		return nil
	}
	return sel
}

// namespaces carries the Eip's namespaces and namespaceSelector, which
// OpenELB ORs for automatic allocation only: any namespace could ask for
// an Eip by name. ironlb's restrict every use of the pool, and both must
// admit a namespace.
func (o *openelbReader) namespaces(p *draftPool, namespaces []string, sel *metav1.LabelSelector) {
	if len(namespaces) == 0 && sel == nil {
		return
	}
	switch {
	case sel == nil:
		p.pool.Namespaces = namespaces
	case len(namespaces) == 0:
		p.pool.NamespaceSelector = sel
	default:
		if merged, ok := anyOf([]metav1.LabelSelector{namespacesSelector(namespaces), *sel}); ok {
			p.pool.NamespaceSelector = merged
		} else {
			p.pool.Namespaces = namespaces
			o.r.drop(p.ref, "spec.namespaceSelector", "OpenELB binds the Eip to namespaces listed or matching the selector; ironlb requires both, so only the list is kept: namespaces that matched only the selector can no longer use the pool")
		}
	}
	o.r.note(p.ref, "spec.namespaces", "OpenELB let Services of any namespace ask for the Eip by name; ironlb keeps every use of the pool to the namespaces it binds")
}

// priorities: OpenELB tries the namespace-bound Eips, lowest priority
// number first, then the default Eip.
func (o *openelbReader) priorities() {
	var set []int64
	for _, e := range o.eips {
		if e.auto && !e.isDefault {
			set = append(set, e.priority)
		}
	}
	ranks := rankPriorities(set)
	for _, e := range o.eips {
		if e.auto && !e.isDefault {
			e.draft.pool.Priority = ranks[e.priority]
			if len(ranks) > 1 {
				o.r.note(e.draft.ref, "spec.priority", "%d becomes priority %d: OpenELB tries the lowest number first, ironlb the highest; the default Eip comes last in both", e.priority, ranks[e.priority])
			}
		}
	}
}
