package bgp

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
)

// Reasons OnPeerState reports that are not failures.
const (
	// ReasonEstablished comes with up = true.
	ReasonEstablished = "established"
	// ReasonConnecting is reported when a peer is configured, before any
	// outcome is known.
	ReasonConnecting = "not established yet"
	// ReasonDeconfigured is reported when a peer is no longer configured for
	// this node (removed, or its nodeSelector no longer matches) or the
	// speaker stops: the peer's session_up series should be deleted rather
	// than set to 0.
	ReasonDeconfigured = "not configured for this node any more"
)

// reasonContext is what a reason's text may cite.
type reasonContext struct {
	peerAddr    string // host:port
	localASN    uint32
	peerASN     uint32
	hasPassword bool
}

// BGP NOTIFICATION error codes (RFC 4271 section 4.5) and the subcodes
// named in reasons.
const (
	errMessageHeader  = 1
	errOpenMessage    = 2
	errUpdateMessage  = 3
	errHoldTimer      = 4
	errFSM            = 5
	errCease          = 6
	errRouteRefresh   = 7
	subBadPeerAS      = 2
	subBadIdentifier  = 3
	subHoldTime       = 6
	subCapability     = 7
	subFSMOpenSent    = 1
	subMaxPrefixes    = 1
	subAdminShutdown  = 2
	subDeconfigured   = 3
	subAdminReset     = 4
	subConnRejected   = 5
	subConfigChange   = 6
	subCollision      = 7
	subHardReset      = 9
	subBFDDown        = 10
	connectTimeoutTxt = "i/o timeout"
)

// errorNames names NOTIFICATION codes and subcodes as the RFCs do (4271,
// 4486, 5492, 8538, 9234, 9384).
var errorNames = map[uint8]struct {
	name string
	subs map[uint8]string
}{
	errMessageHeader: {"Message Header Error", map[uint8]string{1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type"}},
	errOpenMessage: {"OPEN Message Error", map[uint8]string{1: "Unsupported Version Number", 2: "Bad Peer AS", 3: "Bad BGP Identifier",
		4: "Unsupported Optional Parameter", 5: "Authentication Failure", 6: "Unacceptable Hold Time", 7: "Unsupported Capability", 11: "Role Mismatch"}},
	errUpdateMessage: {"UPDATE Message Error", map[uint8]string{1: "Malformed Attribute List", 2: "Unrecognized Well-known Attribute",
		3: "Missing Well-known Attribute", 4: "Attribute Flags Error", 5: "Attribute Length Error", 6: "Invalid ORIGIN Attribute",
		8: "Invalid NEXT_HOP Attribute", 9: "Optional Attribute Error", 10: "Invalid Network Field", 11: "Malformed AS_PATH"}},
	errHoldTimer: {"Hold Timer Expired", nil},
	errFSM: {"Finite State Machine Error", map[uint8]string{1: "Unexpected Message in OpenSent State",
		2: "Unexpected Message in OpenConfirm State", 3: "Unexpected Message in Established State"}},
	errCease: {"Cease", map[uint8]string{1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown", 3: "Peer De-configured",
		4: "Administrative Reset", 5: "Connection Rejected", 6: "Other Configuration Change", 7: "Connection Collision Resolution",
		8: "Out of Resources", 9: "Hard Reset", 10: "BFD Down"}},
	errRouteRefresh: {"ROUTE-REFRESH Message Error", map[uint8]string{1: "Invalid Message Length"}},
}

// notificationName formats a NOTIFICATION as "Code / Subcode".
func notificationName(code, subcode uint8) string {
	c, ok := errorNames[code]
	if !ok {
		return fmt.Sprintf("error code %d subcode %d", code, subcode)
	}
	if sub, ok := c.subs[subcode]; ok {
		return c.name + " / " + sub
	}
	if subcode == 0 {
		return c.name
	}
	return fmt.Sprintf("%s / subcode %d", c.name, subcode)
}

// notificationReason explains a NOTIFICATION the router sent (sent false)
// or this node sent (sent true).
func notificationReason(code, subcode uint8, sent bool, rc reasonContext) string {
	name := "NOTIFICATION " + notificationName(code, subcode)
	by := "the router sent " + name
	if sent {
		by = "this node sent " + name
	}
	switch {
	case code == errOpenMessage && subcode == subBadPeerAS && sent:
		return fmt.Sprintf("wrong AS: the router's OPEN carries an AS other than the configured asn %d (%s)", rc.peerASN, by)
	case code == errOpenMessage && subcode == subBadPeerAS:
		return fmt.Sprintf("wrong AS: the router does not accept this node's AS %d; it expects another AS for this node (%s)", rc.localASN, by)
	case code == errOpenMessage && subcode == subBadIdentifier:
		return fmt.Sprintf("BGP identifier refused: router IDs must be non-zero and unique within the AS (%s)", by)
	case code == errOpenMessage && subcode == subHoldTime:
		return fmt.Sprintf("hold time refused: the two ends could not agree on a hold time (%s)", by)
	case code == errOpenMessage && subcode == subCapability:
		return fmt.Sprintf("capability refused: the router requires a capability this node does not offer (%s)", by)
	case code == errFSM && subcode == subFSMOpenSent && sent:
		// gobgp's outgoing connection manager answers a NOTIFICATION received
		// instead of the router's OPEN with this, and drops the received one.
		return openRefusedReason(rc) + " (" + by + ")"
	case code == errHoldTimer:
		return fmt.Sprintf("hold timer expired: nothing was heard within the hold time (%s)", by)
	case code == errCease && subcode == subAdminShutdown && !sent:
		return "the router shut the session down (" + by + ")"
	case code == errCease && subcode == subDeconfigured && !sent:
		return "the router removed this node from its configuration (" + by + ")"
	case code == errCease && subcode == subAdminReset && sent:
		// Nothing in ironlb resets sessions; gobgp's BFD does.
		return "BFD declared the path to the router down, so this node reset the session (" + by + ")"
	case code == errCease && subcode == subAdminReset:
		return "the router reset the session (" + by + ")"
	case code == errCease && subcode == subConnRejected && !sent:
		return "the router rejected the connection: it has no neighbor entry for this node's address, or already has a session with it (" + by + ")"
	case code == errCease && subcode == subConfigChange:
		return "configuration changed (" + by + ")"
	case code == errCease && subcode == subCollision:
		return "connection collision: the other TCP connection is kept (" + by + ")"
	case code == errCease && subcode == subMaxPrefixes && !sent:
		return "the router's prefix limit for this node was exceeded (" + by + ")"
	case code == errCease && subcode == subHardReset:
		return "hard reset (" + by + ")"
	case code == errCease && subcode == subBFDDown && !sent:
		return "the router's BFD declared the path to this node down (" + by + ")"
	}
	return by
}

// openRefusedReason explains a session the router ended during the OPEN
// exchange. gobgp v4 reads the router's NOTIFICATION there (in OpenSent on
// its outgoing connections, in OpenConfirm) as an unexpected message and
// keeps neither its code nor its data, so the likely causes are named
// instead.
func openRefusedReason(rc reasonContext) string {
	return fmt.Sprintf("the router refused this node's OPEN (gobgp does not expose the router's NOTIFICATION): most often it expects another AS for this node than localASN %d, or has no neighbor entry for this node's address", rc.localASN)
}

// gobgp formats NOTIFICATIONs in reason strings as
// "code 2(open) subcode 2(bad peer as)".
var notificationPattern = regexp.MustCompile(`code (\d+)\([^)]*\) subcode (\d+)`)

func parseNotification(msg string) (code, subcode uint8, ok bool) {
	m := notificationPattern.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0, false
	}
	c, err1 := strconv.ParseUint(m[1], 10, 8)
	s, err2 := strconv.ParseUint(m[2], 10, 8)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint8(c), uint8(s), true
}

// disconnectReason explains why gobgp's FSM left (or failed to reach, if
// !wasUp) ESTABLISHED, from a peer state event. It returns "" when the
// event carries no reason worth reporting.
func disconnectReason(reason api.PeerState_DisconnectReason, msg string, wasUp bool, rc reasonContext) string {
	switch reason {
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		if code, sub, ok := parseNotification(msg); ok {
			return notificationReason(code, sub, reason == api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT, rc)
		}
		return "NOTIFICATION: " + msg
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return notificationReason(errOpenMessage, subBadPeerAS, true, rc)
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return "hold timer expired: nothing was heard from the router within the hold time (router down or path cut)"
	case api.PeerState_DISCONNECT_REASON_READ_FAILED, api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return "the router closed or reset the TCP connection"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		if !wasUp {
			return openRefusedReason(rc)
		}
		return "a malformed or unexpected BGP message was received"
	case api.PeerState_DISCONNECT_REASON_ADMIN_DOWN:
		return "administratively down"
	case api.PeerState_DISCONNECT_REASON_GRACEFUL_RESTART:
		return "session lost; the router keeps this node's routes as stale for the graceful restart time"
	case api.PeerState_DISCONNECT_REASON_RESTART_TIMER_EXPIRED:
		return "graceful restart timer expired"
	case api.PeerState_DISCONNECT_REASON_HARD_RESET:
		return "hard reset"
	case api.PeerState_DISCONNECT_REASON_DECONFIGURED:
		return ReasonDeconfigured
	}
	return ""
}

// connectReason explains a failed TCP connection to the router.
func connectReason(errText string, rc reasonContext) string {
	switch {
	case strings.Contains(errText, connectTimeoutTxt):
		if rc.hasPassword {
			return fmt.Sprintf("TCP connection to %s timed out; TCP MD5 authentication is on for this peer, so the likely cause is a wrong password (a router's kernel silently drops segments whose signature does not match), otherwise the router is unreachable", rc.peerAddr)
		}
		return fmt.Sprintf("TCP connection to %s timed out: the router is unreachable or filtered, or it requires a TCP MD5 password", rc.peerAddr)
	case strings.Contains(errText, "connection refused"):
		return fmt.Sprintf("the router refused the TCP connection to %s: BGP is not listening there", rc.peerAddr)
	case strings.Contains(errText, "no route to host"), strings.Contains(errText, "network is unreachable"):
		return fmt.Sprintf("no route to %s (%s)", rc.peerAddr, errText)
	case strings.Contains(errText, "cannot assign requested address"):
		return fmt.Sprintf("cannot connect to %s from the configured sourceAddress: it is not an address of this node", rc.peerAddr)
	}
	return fmt.Sprintf("TCP connection to %s failed: %s", rc.peerAddr, errText)
}

// logReason explains a session failure gobgp only logged; "" if it does not
// explain anything.
func logReason(ev peerLogEvent, rc reasonContext) string {
	switch ev.kind {
	case logConnectFailed:
		return connectReason(ev.err, rc)
	case logNotificationSent:
		return notificationReason(ev.code, ev.subcode, true, rc)
	case logOutgoingIOError:
		if code, sub, ok := parseNotification(ev.err); ok {
			return notificationReason(code, sub, strings.Contains(ev.err, "sent"), rc)
		}
		if strings.Contains(ev.err, "read-failed") {
			return "the router closed the TCP connection before answering this node's OPEN: it may have no neighbor entry for this node's address"
		}
		if ev.err != "" {
			return "session setup failed: " + ev.err
		}
	}
	return ""
}
