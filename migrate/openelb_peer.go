package migrate

import (
	"encoding/json"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
)

// conf reads the BgpConf named default, the only one OpenELB reads.
func (o *openelbReader) conf(obj *object) {
	ref := obj.ref()
	if obj.Metadata.Name != "default" {
		o.r.drop(ref, "", "OpenELB reads only the BgpConf named default; skipped")
		return
	}
	f := newFields(o.r, ref, "spec", obj.Spec)
	defer f.done()
	b := o.draftBGP()
	f.get("as", &b.localASN)
	b.asnFrom = origin{ref, "spec.as"}
	if f.get("routerId", &b.routerID) {
		b.idFrom = origin{ref, "spec.routerId"}
	}
	var port int64
	if f.get("listenPort", &port) && port != 0 {
		b.listenPort, b.portFrom = &port, origin{ref, "spec.listenPort"}
	}
	f.drop("asPerRack", "ironlb speaks for one AS on every node; an AS per rack is not carried over")
	f.drop("listenAddresses", "ironlb listens on every address of the node; not carried over")
	f.drop("families", "ironlb announces IPv4 and IPv6 as its pools need; not carried over")
	f.drop("useMultiplePaths", "ironlb has no equivalent; not carried over")
	f.drop("policy", "ironlb applies no routing policy; not carried over")
	gr := f.object("gracefulRestart")
	gr.get("enabled", &o.graceful) // applies to every peer, read after
}

// draftBGP returns the bgp section, made on first use: peers may come
// without the BgpConf (then reported for want of localASN).
func (o *openelbReader) draftBGP() *draftBGP {
	if o.bgp == nil {
		o.bgp = &draftBGP{}
	}
	return o.bgp
}

func (o *openelbReader) peer(obj *object) {
	ref := obj.ref()
	f := newFields(o.r, ref, "spec", obj.Spec)
	defer f.done()
	p := &draftPeer{ref: ref, peer: config.BGPPeerFile{Name: obj.Metadata.Name, GracefulRestart: o.graceful}, fields: map[string]string{
		"name": "metadata.name", "address": "spec.conf.neighborAddress", "asn": "spec.conf.peerAs", "port": "spec.transport.remotePort",
		"holdTime": "spec.timers.config.holdTime", "keepaliveTime": "spec.timers.config.keepaliveInterval",
		"ebgpMultihop": "spec.ebgpMultihop", "nodeSelector": "spec.nodeSelector", "passwordSecretRef": "spec.conf.authPassword",
	}}
	pf := &p.peer
	b := o.draftBGP()

	conf := f.object("conf")
	conf.get("peerAs", &pf.ASN)
	conf.get("neighborAddress", &pf.Address)
	conf.ignore("description")
	var localAs int64
	if conf.get("localAs", &localAs) && localAs != 0 && b.localASN != 0 && localAs != b.localASN {
		o.r.drop(ref, "spec.conf.localAs", "%d differs from the BgpConf's as, %d; ironlb speaks for one AS, so this peer is not carried over", localAs, b.localASN)
		f.discard()
		return
	}
	var down bool
	if conf.get("adminDown", &down) && down {
		o.r.drop(ref, "spec.conf.adminDown", "the session is shut down in OpenELB; the peer is not carried over")
		f.discard()
		return
	}
	var password string
	if conf.get("authPassword", &password) && password != "" {
		name := toLabel(obj.Metadata.Name)
		if name == "" {
			name = "peer"
		}
		name += "-bgp-password"
		pf.PasswordSecretRef = &config.SecretKeyRef{Name: name, Key: "password"}
		o.r.drop(ref, "spec.conf.authPassword", "a plain password is not carried over: ironlb reads passwords from Secrets only (and this report does not print it). "+
			"The peer refers to Secret %[1]s, key password: create it before applying: kubectl -n %[2]s create secret generic %[1]s --from-literal=password='<the password>'",
			name, config.DefaultNamespace)
	}

	hop := f.object("ebgpMultihop")
	var enabled bool
	var ttl int64
	if hop.get("enabled", &enabled) && enabled {
		hop.get("multihopTtl", &ttl)
		if ttl == 0 {
			ttl = 255 // gobgp's default for multihop without a TTL
		}
		pf.EBGPMultihop = ttl
	}
	hop.ignore("multihopTtl")

	timers := f.object("timers").object("config")
	pf.HoldTime = seconds(timers, "holdTime")
	pf.KeepaliveTime = seconds(timers, "keepaliveInterval")
	timers.drop("connectRetry", "ironlb retries connections on its own schedule; not carried over")
	timers.drop("minimumAdvertisementInterval", "ironlb has no equivalent; not carried over")

	transport := f.object("transport")
	var port int64
	if transport.get("remotePort", &port) && port != 0 && port != config.DefaultBGPPort {
		pf.Port = &port
	}
	transport.drop("passiveMode", "ironlb always dials the router; not carried over")

	gr := f.object("gracefulRestart")
	var graceful bool
	if gr.get("enabled", &graceful) {
		pf.GracefulRestart = graceful
	}
	f.drop("afiSafis", "ironlb negotiates the IPv4 and IPv6 unicast families itself and uses no add-paths; not carried over")
	var sel metav1.LabelSelector
	if f.get("nodeSelector", &sel) {
		pf.NodeSelector = &sel
	}
	if f.failed("nodeSelector") {
		o.r.drop(ref, "", "its nodeSelector cannot be read, and leaving it out would peer from every node; the peer is not carried over")
		f.discard()
		return
	}
	b.peers = append(b.peers, p)
}

// seconds reads a gobgp timer, written in seconds as a number or a string,
// as a duration ironlb takes.
func seconds(f *fields, key string) string {
	var raw json.RawMessage
	if !f.get(key, &raw) {
		return ""
	}
	s := strings.Trim(string(raw), `"`)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n == 0 {
			return "" // gobgp's "use the default"
		}
		return strconv.FormatFloat(n, 'f', -1, 64) + "s"
	}
	return s // a duration already, or nonsense config will refuse
}
