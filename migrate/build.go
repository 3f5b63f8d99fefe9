package migrate

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/ipam"
)

// builder makes a valid config out of drafts. Each piece is first checked
// on its own with config's validator, which has the final word on what is
// valid; what it refuses is left out and reported with its message, so one
// bad field never costs the whole import.
type builder struct {
	r *report
	d *drafts
	// renamed maps a source name to the pool name it got, when they differ.
	renamed map[string]string
}

// build returns the config, nil when nothing usable is left.
func build(d *drafts, r *report) (*config.File, map[string]string) {
	b := &builder{r: r, d: d, renamed: map[string]string{}}
	asn, bgpOK := b.localASN()
	var pools []*draftPool
	for _, p := range d.pools {
		if p.pool.Mode == config.ModeBGP && !bgpOK {
			why := d.bgpHint
			if d.bgp != nil && d.bgp.localASN != 0 {
				why = "its local AS number is refused, see above"
			}
			r.drop(p.ref, "", "is announced over BGP, but there is no BGP configuration to announce it with (%s); not carried over", why)
			continue
		}
		if b.checkPool(p) {
			pools = append(pools, p)
		}
	}
	pools = b.dropOverlaps(pools)
	if len(pools) == 0 && (d.bgp == nil || !bgpOK) {
		return nil, b.renamed
	}
	names := newNames()
	f := &config.File{}
	for _, p := range pools {
		name := names.claim(p.pool.Name, "pool")
		switch {
		case name == p.pool.Name:
		case toLabel(p.pool.Name) == p.pool.Name:
			// Same-named resources of two namespaces: which one a Service
			// meant is not known, so there is no advice to give it.
			r.note(p.ref, "metadata.name", "another pool is already named %s; this one is named %s", p.pool.Name, name)
		default:
			r.note(p.ref, "metadata.name", "%q is not a valid ironlb pool name (a DNS label); the pool is named %s", p.pool.Name, name)
			b.renamed[p.pool.Name] = name
		}
		p.pool.Name = name
		f.Pools = append(f.Pools, p.pool)
	}
	if bgpOK {
		bgp, advs := b.bgpSection(asn, pools)
		f.BGP, _ = json.Marshal(bgp)
		// Each round clears aggregation from at least one advertisement.
		for range len(advs) {
			_, errs := f.Validate()
			if !b.unaggregate(&bgp, advs, errs) {
				break
			}
			f.BGP, _ = json.Marshal(bgp)
		}
	}
	return f, b.renamed
}

// localASN checks the bgp section's AS number; false when there is no
// usable one, and so no bgp section.
func (b *builder) localASN() (int64, bool) {
	bgp := b.d.bgp
	if bgp == nil {
		return 0, false
	}
	if bgp.localASN == 0 {
		for _, p := range bgp.peers {
			b.r.drop(p.ref, "", "there is no local AS number to peer with (%s); not carried over", b.d.bgpHint)
		}
		return 0, false
	}
	raw, _ := json.Marshal(config.BGPFile{LocalASN: bgp.localASN})
	if _, errs := config.ParseBGP(raw); len(errs) > 0 {
		b.r.drop(bgp.asnFrom.ref, bgp.asnFrom.field, "%s; BGP is not carried over", errs[0].ErrorBody())
		return 0, false
	}
	return bgp.localASN, true
}

// checkPool validates p on its own and mends it: addresses and interfaces
// config refuses are left out; any other refusal (names of namespaces,
// selectors) leaves the pool out, since dropping a restriction would hand
// its addresses to services the source kept away from them.
func (b *builder) checkPool(p *draftPool) bool {
	for {
		probe := p.pool
		probe.Name = "probe"
		probe.Mode = config.ModeLayer2 // bgp needs the whole section; checked later
		_, errs := (&config.File{Pools: []config.PoolFile{probe}}).Validate()
		if len(errs) == 0 {
			return true
		}
		badAddr, badIf := map[int]bool{}, map[int]bool{}
		for _, e := range errs {
			if i, ok := index(e.Field, "pools[0].addresses"); ok && i < len(p.addrFields) {
				b.r.drop(p.ref, p.addrFields[i], "%q %s; not carried over", p.pool.Addresses[i], b.reword(e.Detail, p))
				badAddr[i] = true
				continue
			}
			if i, ok := index(e.Field, "pools[0].interfaces"); ok && i < len(p.pool.Interfaces) {
				b.r.drop(p.ref, "", "interface %q %s; not carried over", p.pool.Interfaces[i], e.Detail)
				badIf[i] = true
				continue
			}
			b.r.drop(p.ref, "", "%s: %s; the pool is not carried over", strings.TrimPrefix(e.Field, "pools[0]."), e.ErrorBody())
			return false
		}
		p.pool.Addresses, p.addrFields = without(p.pool.Addresses, badAddr), without(p.addrFields, badAddr)
		p.pool.Interfaces = without(p.pool.Interfaces, badIf)
		if len(p.pool.Addresses) == 0 {
			b.r.drop(p.ref, "", "has no usable address left; the pool is not carried over")
			return false
		}
	}
}

// dropOverlaps leaves out every address that overlaps one of another pool
// seen before it: ironlb refuses overlapping pools (an address must have
// one owner), and so did the sources, so this is a mistake to fix there.
func (b *builder) dropOverlaps(pools []*draftPool) []*draftPool {
	// Addresses reach this only after config's own validation.
	type placed struct {
		ipam.Range
		pool *draftPool
		i    int
	}
	var seen []placed
	var kept []*draftPool
	for _, p := range pools {
		bad := map[int]bool{}
		for i, a := range p.pool.Addresses {
			s, err := ipam.ParseRange(a)
			if err != nil {
				b.r.drop(p.ref, p.addrFields[i], "%q cannot be read; not carried over", a)
				bad[i] = true
				continue
			}
			for _, o := range seen {
				if o.pool != p && o.Overlaps(s) {
					b.r.drop(p.ref, p.addrFields[i], "%s overlaps %s of %s (%s); ironlb pools must not overlap, so it is not carried over",
						a, o.pool.pool.Addresses[o.i], o.pool.ref, o.pool.addrFields[o.i])
					bad[i] = true
					break
				}
			}
			if !bad[i] {
				seen = append(seen, placed{s, p, i})
			}
		}
		p.pool.Addresses, p.addrFields = without(p.pool.Addresses, bad), without(p.addrFields, bad)
		if len(p.pool.Addresses) == 0 {
			b.r.drop(p.ref, "", "has no address left that no other pool holds; the pool is not carried over")
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

var probePath = regexp.MustCompile(`pools\[0\]\.addresses\[(\d+)\]`)

// reword names the source fields in a message config wrote about the probe
// pool checkPool made.
func (b *builder) reword(detail string, p *draftPool) string {
	detail = strings.ReplaceAll(detail, ` of pool "probe"`, "")
	return probePath.ReplaceAllStringFunc(detail, func(m string) string {
		if i, ok := index(m, "pools[0].addresses"); ok && i < len(p.addrFields) {
			return p.addrFields[i]
		}
		return m
	})
}

// index returns i when path is prefix[i] or prefix[i].something.
func index(path, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"[")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	return i, err == nil && i >= 0
}

func without[T any](s []T, drop map[int]bool) []T {
	if len(drop) == 0 {
		return s
	}
	var out []T
	for i, v := range s {
		if !drop[i] {
			out = append(out, v)
		}
	}
	return out
}

// firstError formats the first of errs without its path, for messages that
// name the source field instead.
func firstError(errs field.ErrorList) string {
	if len(errs) == 0 {
		return ""
	}
	return errs[0].ErrorBody()
}
