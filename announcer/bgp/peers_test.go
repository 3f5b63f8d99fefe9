package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
)

func TestPeerSpecs(t *testing.T) {
	cfg := mustParseBGP(t, `{"localASN": 64515, "peers": [
		{"name": "tor1", "address": "198.51.100.1", "asn": 64512, "holdTime": "9s", "keepaliveTime": "2s",
		 "sourceAddress": "198.51.100.11", "gracefulRestart": true, "port": 1179,
		 "bfd": {"enabled": true, "minRx": "100ms", "minTx": "250ms", "multiplier": 4},
		 "passwordSecretRef": {"name": "s", "key": "k"}, "nodeSelector": {"matchLabels": {"rack": "a"}}},
		{"name": "tor6", "address": "2001:db8:100::1", "asn": 64512, "ebgpMultihop": 3},
		{"name": "elsewhere", "address": "198.51.100.3", "asn": 64512, "nodeSelector": {"matchLabels": {"rack": "b"}}},
		{"name": "locked", "address": "198.51.100.4", "asn": 64512, "passwordSecretRef": {"name": "s", "key": "other"}}]}`)
	specs, missing := peerSpecs(cfg, map[string]string{"rack": "a"}, map[string]string{"tor1": "pw"})
	if len(specs) != 2 || specs["tor1"] == nil || specs["tor6"] == nil {
		t.Fatalf("selected peers = %v", specs)
	}
	if len(missing) != 1 || missing[0].Name != "locked" {
		t.Errorf("missing passwords = %v", missing)
	}
	p := specs["tor1"].peer
	if c := p.Conf; c.NeighborAddress != "198.51.100.1" || c.PeerAsn != 64512 || c.LocalAsn != 64515 || c.AuthPassword != "pw" {
		t.Errorf("conf = %v", c)
	}
	if tc := p.Timers.Config; tc.HoldTime != 9 || tc.KeepaliveInterval != 2 || tc.ConnectRetry != 5 || tc.IdleHoldTimeAfterReset != 5 {
		t.Errorf("timers = %v", tc)
	}
	if p.Transport.RemotePort != 1179 || p.Transport.LocalAddress != "198.51.100.11" {
		t.Errorf("transport = %v", p.Transport)
	}
	if p.EbgpMultihop != nil {
		t.Errorf("multihop = %v", p.EbgpMultihop)
	}
	if !p.GracefulRestart.Enabled || p.GracefulRestart.RestartTime != 9 || !p.AfiSafis[0].MpGracefulRestart.Config.Enabled {
		t.Errorf("graceful restart = %v / %v", p.GracefulRestart, p.AfiSafis[0].MpGracefulRestart)
	}
	if b := p.Bfd; !b.Enabled || b.RequiredMinimumReceive != 100000 || b.DesiredMinimumTxInterval != 250000 || b.DetectionMultiplier != 4 {
		t.Errorf("bfd = %v", b)
	}
	if f := p.AfiSafis[0].Config.Family; f.Afi != api.Family_AFI_IP || f.Safi != api.Family_SAFI_UNICAST {
		t.Errorf("family = %v", f)
	}
	if r := specs["tor1"].rc; r.peerAddr != "198.51.100.1:1179" || !r.hasPassword || r.peerASN != 64512 {
		t.Errorf("reason context = %+v", r)
	}

	p6 := specs["tor6"].peer
	if p6.AfiSafis[0].Config.Family.Afi != api.Family_AFI_IP6 || p6.Bfd != nil || p6.GracefulRestart != nil ||
		!p6.EbgpMultihop.Enabled || p6.EbgpMultihop.MultihopTtl != 3 ||
		p6.Timers.Config.HoldTime != 90 || p6.Timers.Config.KeepaliveInterval != 30 || p6.Transport.LocalAddress != "" {
		t.Errorf("tor6 = %v", p6)
	}
	if specs["tor6"].rc.peerAddr != "[2001:db8:100::1]:179" {
		t.Errorf("IPv6 peer address = %q", specs["tor6"].rc.peerAddr)
	}
}

// TestSpeakerLifecycle covers what needs no router: calls before Start and
// after Stop, SetAnnounced before SetConfig, and a node without IPv4.
func TestSpeakerLifecycle(t *testing.T) {
	ctx := t.Context()
	s := New(Options{})
	if err := s.SetAnnounced(ctx, nil); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("SetAnnounced before Start: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start accepted")
	}
	if err := s.SetAnnounced(ctx, map[netip.Addr]string{netip.MustParseAddr("203.0.113.1"): ""}); err != nil {
		t.Errorf("SetAnnounced before SetConfig: %v", err)
	}
	cfg := mustParseBGP(t, `{"localASN": 64515}`)
	err := s.SetConfig(ctx, cfg, "n1", nil, nil, netip.MustParseAddr("2001:db8::1"))
	if err == nil || !strings.Contains(err.Error(), "set bgp.routerID") {
		t.Errorf("SetConfig on an IPv6-only node: %v", err)
	}
	if err := s.SetConfig(ctx, nil, "n1", nil, nil, netip.Addr{}); err != nil {
		t.Errorf("SetConfig(nil) before any BGP: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.SetConfig(ctx, cfg, "n1", nil, nil, netip.MustParseAddr("198.51.100.99")); err == nil {
		t.Error("SetConfig after Stop accepted")
	}
}

// TestNotifierOrder: OnPeerState sees every change, in order, from one
// goroutine, and Stop delivers what is queued.
func TestNotifierOrder(t *testing.T) {
	var got []string
	done := make(chan struct{})
	n := newNotifier(func(peer string, up bool, reason string) {
		got = append(got, reason) // one goroutine: no lock needed, -race checks
	})
	go func() {
		n.run(context.Background())
		close(done)
	}()
	for _, r := range []string{"a", "b", "c", "d"} {
		n.push(peerEvent{peer: "p", reason: r})
	}
	n.close(context.Background())
	<-done
	if strings.Join(got, "") != "abcd" {
		t.Errorf("delivered %q", got)
	}
}
