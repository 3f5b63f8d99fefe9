package migrate

import (
	"fmt"
	"strings"

	"github.com/ironlb/ironlb/config"
)

// readCommunity reads a Community: aliases BGPAdvertisements may use.
func (m *metallbReader) readCommunity(o *object) {
	f := newFields(m.r, o.ref(), "spec", o.Spec)
	defer f.done()
	for _, c := range f.list("communities") {
		var name, value string
		c.get("name", &name)
		c.get("value", &value)
		if name != "" && value != "" {
			m.communities[name] = value
		}
	}
}

// bfdProfile reads a BFDProfile into the bfd block of the peers using it.
func (m *metallbReader) bfdProfile(o *object) {
	f := newFields(m.r, o.ref(), "spec", o.Spec)
	defer f.done()
	bfd := &config.BFDFile{Enabled: true}
	var rx, tx, mult int64
	if f.get("receiveInterval", &rx) {
		bfd.MinRx = fmt.Sprintf("%dms", rx)
	}
	if f.get("transmitInterval", &tx) {
		bfd.MinTx = fmt.Sprintf("%dms", tx)
	}
	if f.get("detectMultiplier", &mult) {
		bfd.Multiplier = &mult
	}
	f.drop("echoMode", "ironlb's BFD sends no echo packets; not carried over")
	f.drop("echoInterval", "ironlb's BFD sends no echo packets; not carried over")
	f.drop("passiveMode", "ironlb's BFD always starts the session; not carried over")
	f.drop("minimumTtl", "applies to multi-hop BFD, which ironlb does not run; not carried over")
	m.bfd[o.Metadata.Namespace+"/"+o.Metadata.Name] = bfd
}

// bgpAdv reads a BGPAdvertisement's attributes.
func (m *metallbReader) bgpAdv(o *object, f *fields) *draftAdv {
	a := &draftAdv{ref: o.ref(), fields: map[string]string{}}
	var agg, agg6 int64
	if f.get("aggregationLength", &agg) {
		a.adv.AggregationLength, a.fields["aggregationLength"] = &agg, "spec.aggregationLength"
	}
	if f.get("aggregationLengthV6", &agg6) {
		a.adv.AggregationLengthV6, a.fields["aggregationLengthV6"] = &agg6, "spec.aggregationLengthV6"
	}
	var pref int64
	if f.get("localPref", &pref) && pref != 0 {
		a.adv.LocalPref, a.fields["localPref"] = &pref, "spec.localPref"
	}
	var communities []string
	f.get("communities", &communities)
	a.fields["communities"] = "spec.communities"
	for i, c := range communities {
		if v, ok := m.resolveCommunity(c); ok {
			a.adv.Communities = append(a.adv.Communities, v)
		} else {
			m.r.drop(o.ref(), fmt.Sprintf("spec.communities[%d]", i), "%q is no community and no Community resource in the input defines it; not carried over", c)
		}
	}
	f.drop("peers", "ironlb announces to every peer of the node; limiting an advertisement to some peers is not carried over")
	return a
}

// resolveCommunity resolves a BGPAdvertisement's community: a value, or an alias
// of a Community; MetalLB's large:a:b:c is ironlb's a:b:c.
func (m *metallbReader) resolveCommunity(c string) (string, bool) {
	if v, ok := m.communities[c]; ok {
		c = v
	}
	if !strings.Contains(c, ":") && c != "no-export" && c != "no-advertise" && c != "local-as" {
		return "", false
	}
	return strings.TrimPrefix(c, "large:"), true
}
