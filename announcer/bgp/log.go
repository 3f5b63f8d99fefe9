package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// peerLogEvent is what gobgp tells about a session only in its log.
type peerLogEvent struct {
	addr netip.Addr
	// kind is one of the logged messages below.
	kind string
	// err is the connect error or failure reason, for logConnectFailed and
	// logOutgoingIOError.
	err string
	// code and subcode are those of a NOTIFICATION this node sent, for
	// logNotificationSent.
	code, subcode uint8
}

// Messages gobgp v4 logs about sessions that never reach OPENCONFIRM: its
// outgoing connection manager retries them silently, without a peer state
// event, so its log is the only place the reason appears.
const (
	logConnectFailed    = "failed to connect"            // Debug, attr Error
	logOutgoingIOError  = "outgoing connection IO error" // Debug, attr reason
	logNotificationSent = "sent notification"            // Info, attrs Code, Subcode
	logKeyPeer          = "Key"                          // the neighbour address, on peer loggers
	logKeyTopic         = "Topic"                        // "Peer" on peer loggers
	logTopicPeer        = "Peer"
	logKeyError         = "Error"
	logKeyReason        = "reason"
	logKeyCode          = "Code"
	logKeySubcode       = "Subcode"
	logDebugVerbosity   = 6 // gobgp's debug log is per message: very chatty
	logInfoVerbosity    = 3
	logWarningVerbosity = 1
)

// logHandler is the slog.Handler gobgp logs through: records go to klog at
// a verbosity matching their level, and the session failures gobgp reports
// nowhere else are handed to onPeer.
type logHandler struct {
	logger logr.Logger
	onPeer func(peerLogEvent)
	attrs  []slog.Attr
	group  string
}

func newLogHandler(onPeer func(peerLogEvent)) *logHandler {
	return &logHandler{logger: klog.Background().WithName("gobgp"), onPeer: onPeer}
}

// Enabled accepts debug records even when klog would drop them: the connect
// failures that explain a session stuck before OPEN are debug records.
func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	if h.onPeer != nil {
		h.inspect(r)
	}
	var v int
	switch {
	case r.Level >= slog.LevelError:
		kv := h.keysAndValues(r)
		h.logger.Error(nil, r.Message, kv...)
		return nil
	case r.Level >= slog.LevelWarn:
		v = logWarningVerbosity
	case r.Level >= slog.LevelInfo:
		v = logInfoVerbosity
	default:
		v = logDebugVerbosity
	}
	if l := h.logger.V(v); l.Enabled() {
		l.Info(r.Message, h.keysAndValues(r)...)
	}
	return nil
}

// inspect hands session failures of peer loggers to onPeer.
func (h *logHandler) inspect(r slog.Record) {
	switch r.Message {
	case logConnectFailed, logOutgoingIOError, logNotificationSent:
	default:
		return
	}
	ev := peerLogEvent{kind: r.Message}
	isPeer := false
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case logKeyTopic:
			isPeer = a.Value.String() == logTopicPeer
		case logKeyPeer:
			ev.addr, _ = netip.ParseAddr(a.Value.String())
		case logKeyError, logKeyReason:
			ev.err = a.Value.String()
		case logKeyCode:
			ev.code = uint8(a.Value.Int64())
		case logKeySubcode:
			ev.subcode = uint8(a.Value.Int64())
		}
		return true
	}
	for _, a := range h.attrs {
		visit(a)
	}
	r.Attrs(visit)
	if isPeer && ev.addr.IsValid() {
		h.onPeer(ev)
	}
}

func (h *logHandler) keysAndValues(r slog.Record) []any {
	kv := make([]any, 0, 2*(len(h.attrs)+r.NumAttrs()))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		kv = append(kv, key, a.Value.Resolve().Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	return kv
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = strings.TrimPrefix(h.group+"."+name, ".")
	return &c
}
