package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/ironlb/ironlb/ipam"
)

// BGP defaults. Hold and keepalive times are those of RFC 4271 section 10;
// BFD's follow what routers commonly ship for fast detection (~1 s).
const (
	DefaultBGPPort       = 179
	DefaultHoldTime      = 90 * time.Second
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
	// NoListen is ListenPort's default: the speaker only dials out.
	NoListen = -1
	// minHoldTime is RFC 4271's lower bound for a non-zero hold time.
	minHoldTime = 3 * time.Second
	// asTrans is RFC 6793's placeholder for 4-byte ASNs on 2-byte sessions;
	// it never names a real AS.
	asTrans = 23456
)

// BFD interval bounds: faster than 10 ms is beyond what a userspace BFD
// keeps up with, and slower than a minute defeats the purpose.
const (
	minBFDInterval = 10 * time.Millisecond
	maxBFDInterval = time.Minute
)

// Well-known standard communities (RFC 1997) accepted by name.
var wellKnownCommunities = map[string]uint32{
	"no-export":    0xFFFFFF01,
	"no-advertise": 0xFFFFFF02,
	"local-as":     0xFFFFFF03, // NO_EXPORT_SUBCONFED
}

// BGPFile is the bgp section as written by the operator.
type BGPFile struct {
	LocalASN int64  `json:"localASN"`
	RouterID string `json:"routerID,omitempty"`
	// ListenPort is a pointer so that an explicit 0 is told apart from
	// "not set" (which means NoListen).
	ListenPort     *int64                 `json:"listenPort,omitempty"`
	Peers          []BGPPeerFile          `json:"peers,omitempty"`
	Advertisements []BGPAdvertisementFile `json:"advertisements,omitempty"`
}

// BGPPeerFile is one entry of bgp.peers as written by the operator.
// Durations are strings so a bad one is reported with its field path.
type BGPPeerFile struct {
	Name              string                `json:"name"`
	Address           string                `json:"address"`
	ASN               int64                 `json:"asn"`
	Port              *int64                `json:"port,omitempty"`
	HoldTime          string                `json:"holdTime,omitempty"`
	KeepaliveTime     string                `json:"keepaliveTime,omitempty"`
	EBGPMultihop      int64                 `json:"ebgpMultihop,omitempty"`
	SourceAddress     string                `json:"sourceAddress,omitempty"`
	PasswordSecretRef *SecretKeyRef         `json:"passwordSecretRef,omitempty"`
	NodeSelector      *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	GracefulRestart   bool                  `json:"gracefulRestart,omitempty"`
	BFD               *BFDFile              `json:"bfd,omitempty"`
}

// SecretKeyRef names a key of a Secret in ironlb's own namespace. The
// speaker reads it; the config never holds a password.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// String formats the reference as name/key, for messages.
func (r SecretKeyRef) String() string { return r.Name + "/" + r.Key }

// BFDFile is a peer's bfd block as written by the operator.
type BFDFile struct {
	Enabled    bool   `json:"enabled,omitempty"`
	MinRx      string `json:"minRx,omitempty"`
	MinTx      string `json:"minTx,omitempty"`
	Multiplier *int64 `json:"multiplier,omitempty"`
}

// BGPAdvertisementFile is one entry of bgp.advertisements as written by the
// operator.
type BGPAdvertisementFile struct {
	Pools               []string `json:"pools,omitempty"`
	LocalPref           *int64   `json:"localPref,omitempty"`
	Communities         []string `json:"communities,omitempty"`
	AggregationLength   *int64   `json:"aggregationLength,omitempty"`
	AggregationLengthV6 *int64   `json:"aggregationLengthV6,omitempty"`
}

// BGP is a validated bgp section.
type BGP struct {
	LocalASN uint32
	// RouterID is invalid (the zero Addr) when the node's IPv4 address is to
	// be used.
	RouterID netip.Addr
	// ListenPort is NoListen or a TCP port to accept sessions on.
	ListenPort     int32
	Peers          []*BGPPeer
	Advertisements []*BGPAdvertisement

	byPool map[string]*BGPAdvertisement
	// fallback serves the pools no advertisement names: the advertisement
	// without pools, or DefaultAdvertisement.
	fallback *BGPAdvertisement
}

// BGPPeer is a validated router to peer with.
type BGPPeer struct {
	Name          string
	Address       netip.Addr
	ASN           uint32
	Port          uint16
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	// EBGPMultihop is the TTL of an eBGP session's packets; 0 keeps the
	// single-hop default (TTL 1).
	EBGPMultihop uint8
	// SourceAddress is the invalid Addr when the kernel picks it.
	SourceAddress netip.Addr
	// PasswordSecretRef is nil without TCP MD5 authentication.
	PasswordSecretRef *SecretKeyRef
	NodeSelector      labels.Selector
	GracefulRestart   bool
	// BFD is nil when BFD is off.
	BFD *BFD
}

// BFD is a validated BFD setting for one peer.
type BFD struct {
	MinRx, MinTx time.Duration
	Multiplier   uint8
}

// Selects reports whether the node with these labels peers with p.
func (p *BGPPeer) Selects(nodeLabels labels.Set) bool {
	return p.NodeSelector.Matches(nodeLabels)
}

// BGPAdvertisement says how the addresses of some pools are announced.
type BGPAdvertisement struct {
	// Pools is empty for the advertisement that serves every pool no other
	// advertisement names.
	Pools []string
	// LocalPref is nil when unset; it is sent to iBGP peers only.
	LocalPref *uint32
	// Communities are standard communities, each ASN<<16 | value.
	Communities      []uint32
	LargeCommunities []LargeCommunity
	// AggregationLength and AggregationLengthV6 are the prefix lengths the
	// addresses are announced with: 32 and 128 announce each address alone.
	AggregationLength   int
	AggregationLengthV6 int
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	ASN, Data1, Data2 uint32
}

func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.ASN, c.Data1, c.Data2)
}

// DefaultAdvertisement is how a pool's addresses are announced when no
// advertisement applies: each alone, with no attributes. Do not modify it.
var DefaultAdvertisement = &BGPAdvertisement{AggregationLength: 32, AggregationLengthV6: 128}

// AdvertisementFor returns how the addresses of pool are announced. It never
// returns nil.
func (b *BGP) AdvertisementFor(pool string) *BGPAdvertisement {
	if a := b.byPool[pool]; a != nil {
		return a
	}
	return b.fallback
}

// Prefix returns the route that announces ip: ip itself (/32, /128) or the
// aggregate that covers it.
func (a *BGPAdvertisement) Prefix(ip netip.Addr) netip.Prefix {
	bits := a.AggregationLength
	if ip.Is6() {
		bits = a.AggregationLengthV6
	}
	// ip is unmapped and without zone, so PrefixFrom cannot fail.
	return netip.PrefixFrom(ip.Unmap().WithZone(""), bits).Masked()
}

// Equal reports whether a and b announce with the same attributes and
// lengths (their pools aside).
func (a *BGPAdvertisement) Equal(b *BGPAdvertisement) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return equalPtr(a.LocalPref, b.LocalPref) &&
		slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities) &&
		a.AggregationLength == b.AggregationLength &&
		a.AggregationLengthV6 == b.AggregationLengthV6
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// FormatCommunity formats a standard community as ASN:value.
func FormatCommunity(c uint32) string {
	return fmt.Sprintf("%d:%d", c>>16, c&0xFFFF)
}

// ParseBGP decodes and validates the bgp section (as kept raw in
// Config.BGP). Unknown fields are errors; every problem found is returned,
// each with its path rooted at "bgp" and the offending value. An empty
// section yields (nil, nil): BGP is not configured.
//
// It cannot check that the advertised pools exist; Config.ParseBGP does.
func ParseBGP(raw json.RawMessage) (*BGP, field.ErrorList) {
	return parseBGP(raw, nil)
}

// ParseBGP parses c's bgp section like the function ParseBGP and also checks
// it against c's pools: every pool an advertisement names exists and has
// mode bgp, pools of mode bgp have a bgp section to be announced with, and
// aggregation never makes two pools with different attributes share a
// route.
func (c *Config) ParseBGP() (*BGP, field.ErrorList) {
	return parseBGP(c.bgpRaw, c)
}

func parseBGP(raw json.RawMessage, cfg *Config) (*BGP, field.ErrorList) {
	path := field.NewPath("bgp")
	if isEmptyJSON(raw) {
		if cfg != nil {
			for _, p := range cfg.Pools {
				if p.Mode == ModeBGP {
					return nil, field.ErrorList{field.Required(path,
						fmt.Sprintf("pool %s has mode bgp; a bgp section (localASN, peers) is needed to announce it", p.Name))}
				}
			}
		}
		return nil, nil
	}
	var f BGPFile
	strictErrs, err := sigsjson.UnmarshalStrict(raw, &f, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, field.OmitValueType{}, err.Error())}
	}
	if len(strictErrs) > 0 {
		errs := make(field.ErrorList, 0, len(strictErrs))
		for _, e := range strictErrs {
			// Root the path at bgp, as every other message is.
			if fe, ok := e.(sigsjson.FieldError); ok {
				fe.SetFieldPath(path.Child(fe.FieldPath()).String())
			}
			errs = append(errs, field.Forbidden(path, e.Error()))
		}
		return nil, errs
	}
	b, errs := f.validate(path)
	if cfg != nil {
		errs = append(errs, checkPools(&f, cfg, path)...)
		if len(errs) == 0 {
			errs = aggregateConflicts(b, cfg, path)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return b, nil
}

func isEmptyJSON(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// validate checks the section on its own and builds the BGP from it.
func (f *BGPFile) validate(path *field.Path) (*BGP, field.ErrorList) {
	var errs field.ErrorList
	b := &BGP{ListenPort: NoListen, byPool: map[string]*BGPAdvertisement{}}

	if f.LocalASN == 0 {
		errs = append(errs, field.Required(path.Child("localASN"), "the AS number the nodes speak for"))
	} else {
		asn, asnErrs := validateASN(f.LocalASN, path.Child("localASN"))
		errs = append(errs, asnErrs...)
		b.LocalASN = asn
	}
	if f.RouterID != "" {
		id, err := netip.ParseAddr(f.RouterID)
		if err != nil || !id.Is4() || id.IsUnspecified() {
			errs = append(errs, field.Invalid(path.Child("routerID"), f.RouterID,
				"must be an IPv4 address (a BGP identifier is 32 bits); leave it empty to use the node's IPv4 address"))
		} else {
			b.RouterID = id
		}
	}
	if f.ListenPort != nil {
		if p := *f.ListenPort; p != NoListen && (p < 1 || p > 65535) {
			errs = append(errs, field.Invalid(path.Child("listenPort"), p,
				"must be -1 (dial out only, accept no session) or a TCP port 1-65535"))
		} else {
			b.ListenPort = int32(p)
		}
	}

	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i := range f.Peers {
		pp := path.Child("peers").Index(i)
		peer, peerErrs := f.Peers[i].validate(pp, b.LocalASN)
		errs = append(errs, peerErrs...)
		if peer.Name != "" {
			if j, dup := names[peer.Name]; dup {
				errs = append(errs, field.Duplicate(pp.Child("name"), fmt.Sprintf("%s (also peers[%d])", peer.Name, j)))
			} else {
				names[peer.Name] = i
			}
		}
		if peer.Address.IsValid() {
			// One session per router address: gobgp, like most BGP
			// speakers, keys its neighbours by address.
			if j, dup := addrs[peer.Address]; dup {
				errs = append(errs, field.Duplicate(pp.Child("address"), fmt.Sprintf("%s (also peers[%d])", peer.Address, j)))
			} else {
				addrs[peer.Address] = i
			}
		}
		b.Peers = append(b.Peers, peer)
	}

	fallbackIndex := -1
	pools := map[string]int{}
	for i := range f.Advertisements {
		ap := path.Child("advertisements").Index(i)
		adv, advErrs := f.Advertisements[i].validate(ap)
		errs = append(errs, advErrs...)
		if len(adv.Pools) == 0 {
			if fallbackIndex >= 0 {
				errs = append(errs, field.Duplicate(ap.Child("pools"),
					fmt.Sprintf("no pools, like advertisements[%d]: only one advertisement may serve every pool not named elsewhere", fallbackIndex)))
			} else {
				fallbackIndex = i
				b.fallback = adv
			}
		}
		for j, pool := range adv.Pools {
			if k, dup := pools[pool]; dup {
				errs = append(errs, field.Duplicate(ap.Child("pools").Index(j),
					fmt.Sprintf("%s (already in advertisements[%d]; a pool is announced one way)", pool, k)))
				continue
			}
			pools[pool] = i
			b.byPool[pool] = adv
		}
		b.Advertisements = append(b.Advertisements, adv)
	}
	if b.fallback == nil {
		b.fallback = DefaultAdvertisement
	}
	return b, errs
}

func (p *BGPPeerFile) validate(path *field.Path, localASN uint32) (*BGPPeer, field.ErrorList) {
	var errs field.ErrorList
	peer := &BGPPeer{
		Name:              p.Name,
		Port:              DefaultBGPPort,
		GracefulRestart:   p.GracefulRestart,
		PasswordSecretRef: p.PasswordSecretRef,
	}
	errs = append(errs, validateName(path.Child("name"), p.Name, "every peer needs a name (it labels metrics and events)")...)

	if p.Address == "" {
		errs = append(errs, field.Required(path.Child("address"), "the router's IPv4 or IPv6 address"))
	} else if a, err := parseUnicast(p.Address); err != nil {
		errs = append(errs, field.Invalid(path.Child("address"), p.Address, err.Error()))
	} else {
		peer.Address = a
	}

	if p.ASN == 0 {
		errs = append(errs, field.Required(path.Child("asn"), "the router's AS number"))
	} else {
		asn, asnErrs := validateASN(p.ASN, path.Child("asn"))
		errs = append(errs, asnErrs...)
		peer.ASN = asn
	}

	if p.Port != nil {
		if *p.Port < 1 || *p.Port > 65535 {
			errs = append(errs, field.Invalid(path.Child("port"), *p.Port, "must be a TCP port 1-65535"))
		} else {
			peer.Port = uint16(*p.Port)
		}
	}

	peer.HoldTime = DefaultHoldTime
	if p.HoldTime != "" {
		d, err := wholeSeconds(p.HoldTime)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child("holdTime"), p.HoldTime, err.Error()))
		case d == 0:
			// RFC 4271 allows 0 (no keepalives at all), but a session that
			// never times out keeps a dead node's routes forever.
			errs = append(errs, field.Invalid(path.Child("holdTime"), p.HoldTime,
				"0 (no keepalives) is not supported: a dead session would never be noticed; use 3s or more"))
		case d < minHoldTime || d > 65535*time.Second:
			errs = append(errs, field.Invalid(path.Child("holdTime"), p.HoldTime, "must be between 3s and 65535s (RFC 4271)"))
		default:
			peer.HoldTime = d
		}
	}
	peer.KeepaliveTime = max(peer.HoldTime/3/time.Second*time.Second, time.Second)
	if p.KeepaliveTime != "" {
		d, err := wholeSeconds(p.KeepaliveTime)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime, err.Error()))
		case d < time.Second:
			errs = append(errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime, "must be at least 1s"))
		case d >= peer.HoldTime:
			errs = append(errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime,
				fmt.Sprintf("must be less than holdTime (%v); a third of it is customary", peer.HoldTime)))
		default:
			peer.KeepaliveTime = d
		}
	}

	switch {
	case p.EBGPMultihop < 0 || p.EBGPMultihop > 255:
		errs = append(errs, field.Invalid(path.Child("ebgpMultihop"), p.EBGPMultihop, "must be a TTL 0-255 (0: the router is on a directly connected network)"))
	case p.EBGPMultihop > 0 && localASN != 0 && peer.ASN == localASN:
		errs = append(errs, field.Invalid(path.Child("ebgpMultihop"), p.EBGPMultihop,
			fmt.Sprintf("applies to eBGP only; this peer's asn equals localASN %d (iBGP)", localASN)))
	default:
		peer.EBGPMultihop = uint8(p.EBGPMultihop)
	}

	if p.SourceAddress != "" {
		a, err := parseUnicast(p.SourceAddress)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child("sourceAddress"), p.SourceAddress, err.Error()))
		case peer.Address.IsValid() && a.Is4() != peer.Address.Is4():
			errs = append(errs, field.Invalid(path.Child("sourceAddress"), p.SourceAddress,
				fmt.Sprintf("must be of the same IP family as address %s", peer.Address)))
		default:
			peer.SourceAddress = a
		}
	}

	if ref := p.PasswordSecretRef; ref != nil {
		rp := path.Child("passwordSecretRef")
		if ref.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "the Secret (in ironlb's namespace) holding the TCP MD5 password"))
		} else if msgs := validation.IsDNS1123Subdomain(ref.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, strings.Join(msgs, "; ")))
		}
		if ref.Key == "" {
			errs = append(errs, field.Required(rp.Child("key"), "the key of the Secret's data holding the password"))
		} else if msgs := validation.IsConfigMapKey(ref.Key); len(msgs) > 0 {
			errs = append(errs, field.Invalid(rp.Child("key"), ref.Key, strings.Join(msgs, "; ")))
		}
	}

	var selErrs field.ErrorList
	peer.NodeSelector, selErrs = selector(p.NodeSelector, path.Child("nodeSelector"))
	errs = append(errs, selErrs...)

	if p.BFD != nil {
		bfd, bfdErrs := p.BFD.validate(path.Child("bfd"))
		errs = append(errs, bfdErrs...)
		switch {
		case p.BFD.Enabled && p.EBGPMultihop > 1:
			errs = append(errs, field.Invalid(path.Child("bfd", "enabled"), true,
				"BFD is single-hop only (RFC 5881): it needs a directly connected router, and this peer has ebgpMultihop"))
		case p.BFD.Enabled:
			peer.BFD = bfd
		}
	}
	return peer, errs
}

// validate checks every field, enabled or not, so a typo does not wait to
// surface until BFD is switched on.
func (b *BFDFile) validate(path *field.Path) (*BFD, field.ErrorList) {
	var errs field.ErrorList
	bfd := &BFD{MinRx: DefaultBFDInterval, MinTx: DefaultBFDInterval, Multiplier: DefaultBFDMultiplier}
	interval := func(name, text string, into *time.Duration) {
		if text == "" {
			return
		}
		d, err := time.ParseDuration(text)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(path.Child(name), text, "is not a duration (e.g. 300ms)"))
		case d < minBFDInterval || d > maxBFDInterval:
			errs = append(errs, field.Invalid(path.Child(name), text, fmt.Sprintf("must be between %v and %v", minBFDInterval, maxBFDInterval)))
		case d%time.Microsecond != 0:
			errs = append(errs, field.Invalid(path.Child(name), text, "BFD intervals are whole microseconds"))
		default:
			*into = d
		}
	}
	interval("minRx", b.MinRx, &bfd.MinRx)
	interval("minTx", b.MinTx, &bfd.MinTx)
	if b.Multiplier != nil {
		if m := *b.Multiplier; m < 1 || m > 255 {
			errs = append(errs, field.Invalid(path.Child("multiplier"), m, "must be 1-255 (missed packets before the session is declared down)"))
		} else {
			bfd.Multiplier = uint8(m)
		}
	}
	return bfd, errs
}

func (a *BGPAdvertisementFile) validate(path *field.Path) (*BGPAdvertisement, field.ErrorList) {
	var errs field.ErrorList
	adv := &BGPAdvertisement{AggregationLength: 32, AggregationLengthV6: 128}
	seen := map[string]bool{}
	for i, name := range a.Pools {
		switch msgs := validation.IsDNS1123Label(name); {
		case name == "":
			errs = append(errs, field.Invalid(path.Child("pools").Index(i), name, "a pool name"))
		case len(msgs) > 0:
			errs = append(errs, field.Invalid(path.Child("pools").Index(i), name, strings.Join(msgs, "; ")))
		case seen[name]:
			errs = append(errs, field.Duplicate(path.Child("pools").Index(i), name))
		default:
			seen[name] = true
			adv.Pools = append(adv.Pools, name)
		}
	}
	if a.LocalPref != nil {
		if lp := *a.LocalPref; lp < 0 || lp > 1<<32-1 {
			errs = append(errs, field.Invalid(path.Child("localPref"), lp, "must be 0-4294967295"))
		} else {
			v := uint32(lp)
			adv.LocalPref = &v
		}
	}
	std, large := map[uint32]bool{}, map[LargeCommunity]bool{}
	for i, text := range a.Communities {
		cp := path.Child("communities").Index(i)
		if strings.Count(text, ":") == 2 {
			c, err := parseLargeCommunity(text)
			switch {
			case err != nil:
				errs = append(errs, field.Invalid(cp, text, err.Error()))
			case large[c]:
				errs = append(errs, field.Duplicate(cp, text))
			default:
				large[c] = true
				adv.LargeCommunities = append(adv.LargeCommunities, c)
			}
			continue
		}
		c, err := parseCommunity(text)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(cp, text, err.Error()))
		case std[c]:
			errs = append(errs, field.Duplicate(cp, text))
		default:
			std[c] = true
			adv.Communities = append(adv.Communities, c)
		}
	}
	length := func(name string, v *int64, maxBits int, into *int) {
		if v == nil {
			return
		}
		if *v < 1 || *v > int64(maxBits) {
			errs = append(errs, field.Invalid(path.Child(name), *v,
				fmt.Sprintf("must be 1-%d (%d announces each address alone)", maxBits, maxBits)))
			return
		}
		*into = int(*v)
	}
	length("aggregationLength", a.AggregationLength, 32, &adv.AggregationLength)
	length("aggregationLengthV6", a.AggregationLengthV6, 128, &adv.AggregationLengthV6)
	return adv, errs
}

// checkPools checks that the advertisements name pools of cfg in mode bgp.
func checkPools(f *BGPFile, cfg *Config, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, a := range f.Advertisements {
		for j, name := range a.Pools {
			pool := cfg.Pool(name)
			p := path.Child("advertisements").Index(i).Child("pools").Index(j)
			switch {
			case len(validation.IsDNS1123Label(name)) > 0:
				// Already reported as invalid.
			case pool == nil:
				errs = append(errs, field.NotFound(p, name))
			case pool.Mode != ModeBGP:
				errs = append(errs, field.Invalid(p, name,
					fmt.Sprintf("pool %s has mode %s; only pools of mode bgp are announced over BGP", name, pool.Mode)))
			}
		}
	}
	return errs
}

// aggregateConflicts reports pools whose addresses would be announced in
// one aggregate route by advertisements with different attributes: the
// route can carry only one set, so one pool's would silently win.
func aggregateConflicts(b *BGP, cfg *Config, path *field.Path) field.ErrorList {
	type span struct {
		first, last netip.Prefix // aggregates of the range's ends
		pool        string
		text        string
		adv         *BGPAdvertisement
	}
	var spans []span
	for _, p := range cfg.Pools {
		if p.Mode != ModeBGP {
			continue
		}
		adv := b.AdvertisementFor(p.Name)
		for _, r := range p.Ranges {
			spans = append(spans, span{first: adv.Prefix(r.First), last: adv.Prefix(r.Last), pool: p.Name, text: rangeText(r), adv: adv})
		}
	}
	var errs field.ErrorList
	reported := map[[2]string]bool{}
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, c := spans[i], spans[j]
			if a.pool == c.pool || a.adv.Equal(c.adv) || a.first.Bits() != c.first.Bits() || a.first.Addr().Is4() != c.first.Addr().Is4() {
				continue
			}
			// Aggregates of one length either coincide or are disjoint, so
			// the ranges' aggregate spans overlap exactly when they share a
			// route.
			if a.last.Addr().Less(c.first.Addr()) || c.last.Addr().Less(a.first.Addr()) {
				continue
			}
			key := [2]string{a.pool, c.pool}
			if reported[key] {
				continue
			}
			reported[key] = true
			shared := c.first
			if c.first.Addr().Less(a.first.Addr()) {
				shared = a.first
			}
			errs = append(errs, field.Invalid(path.Child("advertisements"), field.OmitValueType{},
				fmt.Sprintf("pools %s (%s) and %s (%s) would share the route %s with different attributes; use a longer aggregationLength or the same advertisement",
					a.pool, a.text, c.pool, c.text, shared)))
		}
	}
	return errs
}

func rangeText(r ipam.Range) string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

func validateASN(v int64, path *field.Path) (uint32, field.ErrorList) {
	switch {
	case v < 1 || v > 1<<32-1:
		return 0, field.ErrorList{field.Invalid(path, v, "must be an AS number 1-4294967295")}
	case v == asTrans:
		return 0, field.ErrorList{field.Invalid(path, v, "23456 is AS_TRANS (RFC 6793), a placeholder that never names a real AS")}
	}
	return uint32(v), nil
}

// parseUnicast parses a unicast IP address without zone.
func parseUnicast(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("is not an IP address")
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("must not carry a zone: link-local peering is not supported")
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("write IPv4 addresses as such, not IPv4-mapped IPv6")
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("must be a unicast address")
	}
	return a, nil
}

// wholeSeconds parses a duration that BGP carries in whole seconds.
func wholeSeconds(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("is not a duration (e.g. 90s, 1m30s)")
	}
	if d < 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("must be a whole, non-negative number of seconds (BGP carries seconds)")
	}
	return d, nil
}

// parseCommunity parses an RFC 1997 community: ASN:value with both 0-65535,
// or a well-known name.
func parseCommunity(s string) (uint32, error) {
	if c, ok := wellKnownCommunities[s]; ok {
		return c, nil
	}
	const want = "must be a standard community ASN:value (each 0-65535), a large community ASN:value:value (each 0-4294967295), or no-export, no-advertise, local-as"
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%s", want)
	}
	a, errA := strconv.ParseUint(hi, 10, 16)
	v, errV := strconv.ParseUint(lo, 10, 16)
	if errA != nil || errV != nil {
		return 0, fmt.Errorf("%s", want)
	}
	return uint32(a)<<16 | uint32(v), nil
}

// parseLargeCommunity parses an RFC 8092 community ASN:value:value.
func parseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("must be a large community ASN:value:value, each 0-4294967295")
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{ASN: v[0], Data1: v[1], Data2: v[2]}, nil
}
