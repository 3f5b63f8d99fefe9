package migrate

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
)

// mlbPeer is a BGPPeer (v1beta1 or v1beta2) being read.
type mlbPeer struct {
	obj      *object
	draft    *draftPeer
	myASN    int64
	routerID string
}

// peers makes the bgp section: MetalLB sets the local AS on each peer,
// ironlb once for all, so the first peer's myASN is localASN and peers
// with another are left out.
func (m *metallbReader) peers(objs []*object) {
	var kept []*mlbPeer
	for _, o := range objs {
		p := m.peer(o)
		if p == nil {
			continue
		}
		if m.bgp == nil {
			m.bgp = &draftBGP{localASN: p.myASN, asnFrom: origin{o.ref(), "spec.myASN"}}
		} else if p.myASN != m.bgp.localASN {
			m.r.drop(o.ref(), "spec.myASN", "%d differs from %d of %s; ironlb speaks for one AS (localASN), so this peer is not carried over",
				p.myASN, m.bgp.localASN, m.bgp.asnFrom.ref)
			continue
		}
		m.bgp.peers = append(m.bgp.peers, p.draft)
		kept = append(kept, p)
	}
	m.routerID(kept)
}

// routerID carries the peers' routerID when they all set the same one:
// ironlb has one for every session.
func (m *metallbReader) routerID(peers []*mlbPeer) {
	var ids []string
	for _, p := range peers {
		if !slices.Contains(ids, p.routerID) {
			ids = append(ids, p.routerID)
		}
	}
	if len(ids) == 1 && ids[0] != "" {
		m.bgp.routerID, m.bgp.idFrom = ids[0], origin{peers[0].obj.ref(), "spec.routerID"}
		return
	}
	for _, p := range peers {
		if p.routerID != "" {
			m.r.drop(p.obj.ref(), "spec.routerID", "the peers do not all set the same router ID; ironlb has one for every session (by default each node's own IPv4 address), so %s is not carried over", p.routerID)
		}
	}
}

func (m *metallbReader) peer(o *object) *mlbPeer {
	f := newFields(m.r, o.ref(), "spec", o.Spec)
	defer f.done()
	ref := o.ref()
	p := &mlbPeer{obj: o, draft: &draftPeer{ref: ref, peer: config.BGPPeerFile{Name: o.Metadata.Name}, fields: map[string]string{
		"name": "metadata.name", "address": "spec.peerAddress", "asn": "spec.peerASN", "port": "spec.peerPort",
		"holdTime": "spec.holdTime", "keepaliveTime": "spec.keepaliveTime", "sourceAddress": "spec.sourceAddress",
		"nodeSelector": "spec.nodeSelectors", "ebgpMultihop": "spec.ebgpMultiHop", "bfd": "spec.bfdProfile",
		"passwordSecretRef": "spec.passwordSecret",
	}}}
	pf := &p.draft.peer
	if !f.get("myASN", &p.myASN) || p.myASN == 0 {
		m.r.drop(ref, "spec.myASN", "is missing: it is ironlb's localASN; the peer is not carried over")
		f.discard()
		return nil
	}
	f.get("peerASN", &pf.ASN)
	var dynamic string
	if f.get("dynamicASN", &dynamic) && pf.ASN == 0 {
		if dynamic != "internal" {
			m.r.drop(ref, "spec.dynamicASN", "%q: ironlb needs the router's AS number (peerASN); the peer is not carried over", dynamic)
			f.discard()
			return nil
		}
		pf.ASN = p.myASN
		m.r.note(ref, "spec.dynamicASN", "internal: the router's AS is myASN, %d, written as asn for ironlb", p.myASN)
	}
	f.get("peerAddress", &pf.Address)
	var port int64
	if f.get("peerPort", &port) && port != 0 && port != config.DefaultBGPPort {
		pf.Port = &port
	}
	f.get("holdTime", &pf.HoldTime)
	f.get("keepaliveTime", &pf.KeepaliveTime)
	f.get("sourceAddress", &pf.SourceAddress)
	f.get("routerID", &p.routerID)
	f.get("enableGracefulRestart", &pf.GracefulRestart)
	var sels []metav1.LabelSelector
	f.get("nodeSelectors", &sels)
	if f.failed("nodeSelectors") {
		m.r.drop(ref, "", "its nodeSelectors cannot be read, and leaving them out would peer from every node; the peer is not carried over")
		f.discard()
		return nil
	}
	if sel, ok := anyOf(sels); ok {
		pf.NodeSelector = sel
	} else {
		pf.NodeSelector = &sels[0]
		m.r.drop(ref, "spec.nodeSelectors", "MetalLB peers from a node matching any of these selectors; ironlb takes one, so only the first (%s) is kept: nodes matching only the others no longer peer",
			metav1.FormatLabelSelector(&sels[0]))
	}
	var multihop bool
	if f.get("ebgpMultiHop", &multihop) && multihop {
		if pf.ASN == p.myASN {
			m.r.note(ref, "spec.ebgpMultiHop", "has no meaning for an iBGP peer; not carried over")
		} else {
			pf.EBGPMultihop = 255
			m.r.note(ref, "spec.ebgpMultiHop", "becomes ebgpMultihop: 255, the TTL FRR uses for ebgp-multihop without a count; lower it to the real hop count if you like")
		}
	}
	m.password(p, f)
	m.peerBFD(p, f)
	f.drop("connectTime", "ironlb retries connections on its own schedule; not carried over")
	f.drop("vrf", "ironlb peers from the node's main routing table, not a VRF; not carried over")
	f.drop("disableMP", "ironlb's sessions carry IPv4 and IPv6 as multiprotocol BGP needs; not carried over")
	f.drop("interface", "BGP unnumbered (peering over an interface) is not supported by ironlb; not carried over")
	return p
}

// password carries passwordSecret, and refuses to carry a plain password:
// ironlb keeps passwords in Secrets only, and the report never prints one.
func (m *metallbReader) password(p *mlbPeer, f *fields) {
	ref := p.obj.ref()
	var secret struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	var password string
	hasSecret := f.get("passwordSecret", &secret) && secret.Name != ""
	hasPassword := f.get("password", &password) && password != ""
	switch {
	case hasSecret:
		ns := secret.Namespace
		if ns == "" {
			ns = p.obj.Metadata.Namespace
		}
		p.draft.peer.PasswordSecretRef = &config.SecretKeyRef{Name: secret.Name, Key: "password"}
		m.r.note(ref, "spec.passwordSecret", "ironlb reads the password from key password of Secret %s in namespace %s: copy Secret %s/%s there before applying",
			secret.Name, config.DefaultNamespace, ns, secret.Name)
		if hasPassword {
			m.r.drop(ref, "spec.password", "is set besides passwordSecret; the Secret is used and the plain password is not carried over")
		}
	case hasPassword:
		name := toLabel(p.obj.Metadata.Name)
		if name == "" {
			name = "peer"
		}
		name += "-bgp-password"
		p.draft.peer.PasswordSecretRef = &config.SecretKeyRef{Name: name, Key: "password"}
		m.r.drop(ref, "spec.password", "a plain password is not carried over: ironlb reads passwords from Secrets only (and this report does not print it). "+
			"The peer refers to Secret %[1]s, key password: create it before applying: kubectl -n %[2]s create secret generic %[1]s --from-literal=password='<the password>'",
			name, config.DefaultNamespace)
	}
}

// peerBFD carries bfdProfile when the BFDProfile is in the input.
func (m *metallbReader) peerBFD(p *mlbPeer, f *fields) {
	var profile string
	if !f.get("bfdProfile", &profile) || profile == "" {
		return
	}
	bfd, ok := m.bfd[p.obj.Metadata.Namespace+"/"+profile]
	if !ok {
		m.r.drop(p.obj.ref(), "spec.bfdProfile", "BFDProfile %s is not in the input, so BFD is not carried over: pass it too, or set bfd on the peer", profile)
		return
	}
	copied := *bfd
	p.draft.peer.BFD = &copied
}
