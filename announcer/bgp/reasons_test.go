package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
)

var testRC = reasonContext{peerAddr: "198.51.100.1:179", localASN: 64515, peerASN: 64512}

func TestReasons(t *testing.T) {
	withPassword := testRC
	withPassword.hasPassword = true
	cases := []struct {
		name, got, want string
	}{
		{"timeout with MD5", connectReason("dial tcp 198.51.100.1:179: i/o timeout", withPassword), "likely cause is a wrong password"},
		{"timeout without MD5", connectReason("dial tcp 198.51.100.1:179: i/o timeout", testRC), "unreachable or filtered, or it requires a TCP MD5 password"},
		{"refused", connectReason("dial tcp 198.51.100.1:179: connect: connection refused", testRC), "refused the TCP connection to 198.51.100.1:179"},
		{"no route", connectReason("connect: no route to host", testRC), "no route to 198.51.100.1:179"},
		{"bad source", connectReason("bind: cannot assign requested address", testRC), "sourceAddress: it is not an address of this node"},
		{"other", connectReason("something odd", testRC), "failed: something odd"},

		{"router refuses our AS", notificationReason(2, 2, false, testRC), "wrong AS: the router does not accept this node's AS 64515"},
		{"router's AS not configured", notificationReason(2, 2, true, testRC), "carries an AS other than the configured asn 64512 (this node sent NOTIFICATION OPEN Message Error / Bad Peer AS)"},
		{"router ID", notificationReason(2, 3, false, testRC), "router IDs must be non-zero and unique"},
		{"OPEN refused, NOTIFICATION dropped", notificationReason(5, 1, true, testRC), "another AS for this node than localASN 64515"},
		{"admin shutdown", notificationReason(6, 2, false, testRC), "the router shut the session down (the router sent NOTIFICATION Cease / Administrative Shutdown)"},
		{"deconfigured", notificationReason(6, 3, false, testRC), "removed this node from its configuration"},
		{"BFD reset", notificationReason(6, 4, true, testRC), "BFD declared the path to the router down"},
		{"rejected", notificationReason(6, 5, false, testRC), "no neighbor entry for this node's address"},
		{"unknown subcode", notificationReason(3, 99, false, testRC), "the router sent NOTIFICATION UPDATE Message Error / subcode 99"},
		{"unknown code", notificationReason(42, 1, false, testRC), "error code 42 subcode 1"},
		{"hold timer", notificationReason(4, 0, true, testRC), "hold timer expired"},

		{"event notification", disconnectReason(api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, "notification-received code 2(open) subcode 2(bad peer as)", true, testRC), "wrong AS: the router does not accept"},
		{"event unparsable notification", disconnectReason(api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, "notification-sent ???", true, testRC), "NOTIFICATION: notification-sent ???"},
		{"event bad peer AS", disconnectReason(api.PeerState_DISCONNECT_REASON_BAD_PEER_AS, "bad-peer-as", false, testRC), "configured asn 64512"},
		{"event hold timer", disconnectReason(api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, "", true, testRC), "router down or path cut"},
		{"event read failed", disconnectReason(api.PeerState_DISCONNECT_REASON_READ_FAILED, "read-failed", true, testRC), "closed or reset the TCP connection"},
		{"event invalid, never up", disconnectReason(api.PeerState_DISCONNECT_REASON_INVALID_MSG, "invalid-msg", false, testRC), "the router refused this node's OPEN"},
		{"event invalid, was up", disconnectReason(api.PeerState_DISCONNECT_REASON_INVALID_MSG, "invalid-msg", true, testRC), "malformed or unexpected"},
		{"event nothing", disconnectReason(api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED, "", false, testRC), ""},

		{"log connect", logReason(peerLogEvent{kind: logConnectFailed, err: "dial tcp: i/o timeout"}, withPassword), "wrong password"},
		{"log sent", logReason(peerLogEvent{kind: logNotificationSent, code: 2, subcode: 2}, testRC), "configured asn 64512"},
		{"log IO notification", logReason(peerLogEvent{kind: logOutgoingIOError, err: "notification-received code 6(cease) subcode 5(connection rejected)"}, testRC), "the router rejected the connection"},
		{"log IO read", logReason(peerLogEvent{kind: logOutgoingIOError, err: "read-failed"}, testRC), "closed the TCP connection before answering"},
		{"log other", logReason(peerLogEvent{kind: "something else"}, testRC), ""},
	}
	for _, c := range cases {
		if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
			t.Errorf("%s: %q, want it to contain %q", c.name, c.got, c.want)
		}
	}
}

func TestParseNotification(t *testing.T) {
	code, sub, ok := parseNotification("notification-received code 6(cease) subcode 10(undefined)")
	if !ok || code != 6 || sub != 10 {
		t.Errorf("= %d %d %v", code, sub, ok)
	}
	if _, _, ok := parseNotification("hold-timer-expired"); ok {
		t.Error("parsed a reason without NOTIFICATION")
	}
}

// TestLogHandler feeds the handler records shaped like gobgp's: peer
// loggers carry Topic and Key from With.
func TestLogHandler(t *testing.T) {
	var mu sync.Mutex
	var got []peerLogEvent
	logger := slog.New(newLogHandler(func(ev peerLogEvent) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
	}))
	peer := logger.With(slog.String("Topic", "Peer"), slog.String("Key", "198.51.100.1"))
	peer.Debug("failed to connect", slog.String("Error", "dial tcp 198.51.100.1:179: i/o timeout"))
	peer.Info("sent notification", slog.String("State", "BGP_FSM_OPENSENT"), slog.Int("Code", 2), slog.Int("Subcode", 2), slog.Any("Data", []byte{}))
	peer.Debug("outgoing connection IO error", slog.String("reason", "read-failed"))
	peer.Info("Peer Up")                                                     // not a failure
	logger.Debug("failed to connect", slog.String("Error", "no peer attrs")) // not a peer logger
	logger.Error("an error", slog.String("Topic", "Server"))                 // forwarded to klog only
	_ = logger.Handler().Enabled(context.Background(), slog.LevelDebug)

	mu.Lock()
	defer mu.Unlock()
	want := []peerLogEvent{
		{addr: netip.MustParseAddr("198.51.100.1"), kind: logConnectFailed, err: "dial tcp 198.51.100.1:179: i/o timeout"},
		{addr: netip.MustParseAddr("198.51.100.1"), kind: logNotificationSent, code: 2, subcode: 2},
		{addr: netip.MustParseAddr("198.51.100.1"), kind: logOutgoingIOError, err: "read-failed"},
	}
	if len(got) != len(want) {
		t.Fatalf("events = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
