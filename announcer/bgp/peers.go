package bgp

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/ironlb/ironlb/config"
)

// Session timers ironlb sets instead of gobgp's defaults (120 s between
// connection attempts, 30 s idle after a reset): a node whose session is
// down attracts no traffic, so it should come back within seconds of the
// router or the path returning.
const (
	connectRetry           = 5 * time.Second
	idleHoldTimeAfterReset = 5 * time.Second
	// maxRestartTime is the largest graceful restart time the capability
	// can carry (12 bits, RFC 4724).
	maxRestartTime = 4095
)

// peerSpec is one peer as this node configures it.
type peerSpec struct {
	name string
	addr netip.Addr
	peer *api.Peer
	rc   reasonContext
}

// peerSpecs returns the peers of cfg that select this node, by name, with
// their passwords resolved. Peers whose password is missing are left out
// and listed in missing.
func peerSpecs(cfg *config.BGP, nodeLabels map[string]string, passwords map[string]string) (specs map[string]*peerSpec, missing []*config.BGPPeer) {
	specs = map[string]*peerSpec{}
	for _, p := range cfg.Peers {
		if !p.Selects(nodeLabels) {
			continue
		}
		password := ""
		if p.PasswordSecretRef != nil {
			pw, ok := passwords[p.Name]
			if !ok || pw == "" {
				missing = append(missing, p)
				continue
			}
			password = pw
		}
		specs[p.Name] = &peerSpec{
			name: p.Name,
			addr: p.Address,
			peer: apiPeer(p, cfg.LocalASN, password),
			rc: reasonContext{
				peerAddr:    net.JoinHostPort(p.Address.String(), strconv.Itoa(int(p.Port))),
				localASN:    cfg.LocalASN,
				peerASN:     p.ASN,
				hasPassword: password != "",
			},
		}
	}
	return specs, missing
}

// apiPeer translates a peer to gobgp. Sessions carry only the family of the
// router's address (IPv4 routes over IPv4 sessions, IPv6 over IPv6): the
// next hop gobgp sends is the session's local address, which must be of the
// route's family to be usable.
func apiPeer(p *config.BGPPeer, localASN uint32, password string) *api.Peer {
	afi := api.Family_AFI_IP
	if p.Address.Is6() {
		afi = api.Family_AFI_IP6
	}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        localASN,
			AuthPassword:    password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               uint64(p.HoldTime / time.Second),
			KeepaliveInterval:      uint64(p.KeepaliveTime / time.Second),
			ConnectRetry:           uint64(connectRetry / time.Second),
			IdleHoldTimeAfterReset: uint64(idleHoldTimeAfterReset / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis: []*api.AfiSafi{{
			Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{
				Enabled: p.GracefulRestart,
			}},
		}},
	}
	if p.SourceAddress.IsValid() {
		peer.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultihop > 0 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihop)}
	}
	if p.GracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(min(p.HoldTime/time.Second, maxRestartTime)),
		}
	}
	if b := p.BFD; b != nil {
		peer.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(b.MinTx / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.MinRx / time.Microsecond),
			DetectionMultiplier:      uint32(b.Multiplier),
		}
	}
	return peer
}
