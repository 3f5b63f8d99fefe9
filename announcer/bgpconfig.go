package announcer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/bgp"
	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// The BGP sessions follow the config in force, this node's labels and the
// peers' password Secrets; failures are retried with backoff and reported on
// the node's SpeakerStatus and as Events.

// bgpInputs is everything the BGP sessions depend on.
type bgpInputs struct {
	cfg      *config.BGP
	labels   map[string]string
	routerID netip.Addr
}

func (in *bgpInputs) same(other *bgpInputs) bool {
	return other != nil && in.cfg == other.cfg && maps.Equal(in.labels, other.labels) && in.routerID == other.routerID
}

// How a failed BGP configuration is retried: from bgpRetryMin, doubling,
// up to bgpRetryMax.
const (
	bgpRetryMin = time.Second
	bgpRetryMax = time.Minute
)

// retryBGP configures BGP again after a failure, and schedules the next try
// if it fails again.
func (s *Speaker) retryBGP(ctx context.Context) {
	s.mu.Lock()
	section := s.bgpSection
	s.mu.Unlock()
	if err := s.configureBGP(ctx, section, true); err != nil {
		s.scheduleBGPRetry(err)
		return
	}
	s.bgpRetryDelay = 0
}

func (s *Speaker) scheduleBGPRetry(err error) {
	s.bgpRetryDelay = min(max(2*s.bgpRetryDelay, bgpRetryMin), bgpRetryMax)
	klog.ErrorS(err, "Configuring BGP sessions failed; retrying", "retryIn", s.bgpRetryDelay)
	s.queue.AddAfter(bgpKey, s.bgpRetryDelay)
}

// configureBGP hands the BGP protocol the bgp section, this node's labels
// and its router ID when one of them changed, or when retry asks to try a
// failed configuration again. Peer passwords are read from their Secrets
// then: rotating a password means touching the config. A peer whose
// password cannot be read is left out and reported (its session state and
// a BGPSessionDown Event) until a retry reads it.
func (s *Speaker) configureBGP(ctx context.Context, section *config.BGP, retry bool) error {
	if s.opts.BGP == nil {
		return nil
	}
	s.mu.Lock()
	s.bgpSection = section
	s.mu.Unlock()
	node := s.nodes.get(s.opts.NodeName)
	if node == nil {
		return fmt.Errorf("this node's object: Node %q not found", s.opts.NodeName)
	}
	in := &bgpInputs{cfg: section, labels: node.labels, routerID: node.routerID}
	if in.same(s.bgpApplied) || (!retry && in.same(s.bgpFailed)) {
		return nil // applied, or failed with its retry already scheduled
	}
	passwords := map[string]string{}
	var errs []error
	if in.cfg != nil {
		for _, p := range in.cfg.Peers {
			if p.PasswordSecretRef == nil {
				continue
			}
			secret, err := s.client.CoreV1().Secrets(s.opts.ConfigNamespace).Get(ctx, p.PasswordSecretRef.Name, metav1.GetOptions{})
			if err != nil {
				errs = append(errs, fmt.Errorf("peer %s: password Secret %s/%s: %w", p.Name, s.opts.ConfigNamespace, p.PasswordSecretRef.Name, err))
				continue
			}
			passwords[p.Name] = string(secret.Data[p.PasswordSecretRef.Key])
		}
	}
	// The reporter learns the peers first: it drops session events about
	// peers it does not know.
	if s.opts.Status != nil {
		s.opts.Status.SetBGPPeers(peersOf(in.cfg, in.labels))
	}
	if err := s.opts.BGP.SetConfig(ctx, in.cfg, s.opts.NodeName, in.labels, passwords, in.routerID); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.bgpApplied, s.bgpFailed = nil, in
		return err
	}
	s.bgpApplied, s.bgpFailed = in, nil
	return nil
}

// peersOf names the peers this node has sessions with, and their addresses.
func peersOf(cfg *config.BGP, nodeLabels map[string]string) map[string]string {
	peers := map[string]string{}
	if cfg == nil {
		return peers
	}
	for _, p := range cfg.Peers {
		if p.Selects(labels.Set(nodeLabels)) {
			peers[p.Name] = p.Address.String()
		}
	}
	return peers
}

// AdvertisementOf is how ip is advertised in bgp mode: as the first config
// layer covering it says. That is the bgp section in force for the valid
// ironlb-config's pools; a held address that only a kept config covers
// keeps that config's own advertisement (communities, LOCAL_PREF,
// aggregation), as the config it was announced under said, whatever the
// section in force says of pools it does not know.
func (s *Speaker) AdvertisementOf(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement {
	s.mu.Lock()
	layers := s.layers
	s.mu.Unlock()
	p, i := layers.PoolFor(ip)
	switch {
	case p == nil:
		return nil
	case layers[i].BGP != nil:
		return layers[i].BGP.AdvertisementFor(p.Name)
	case inForce != nil:
		return inForce.AdvertisementFor(p.Name)
	}
	return nil
}

// BGPSessionChanged records a BGP session going up or down: a metric, a log
// line and an Event on this node with the reason.
func (s *Speaker) BGPSessionChanged(peer string, up bool, reason string) {
	value, eventType, what := 0.0, v1.EventTypeWarning, "BGPSessionDown"
	if up {
		value, eventType, what = 1, v1.EventTypeNormal, "BGPSessionUp"
	}
	bgpSessionUp.WithLabelValues(peer, s.opts.NodeName).Set(value)
	klog.InfoS("BGP session changed", "peer", peer, "up", up, "reason", reason)
	s.reportSession(peer, up, reason)
	if reason == bgp.ReasonConnecting {
		return // a peer just configured is connecting, not down: no Warning
	}
	s.nodeEvent(eventType, what, "BGP session with %s on %s: %s", peer, s.opts.NodeName, reason)
}

// reportSession hands a session change to the status reporter, with the
// peer's address from the config in force.
func (s *Speaker) reportSession(peer string, up bool, reason string) {
	if s.opts.Status == nil {
		return
	}
	session := v1alpha1.BGPSession{Peer: peer, State: v1alpha1.BGPDown, Reason: reason}
	switch {
	case up:
		session.State = v1alpha1.BGPEstablished
	case reason == bgp.ReasonConnecting:
		session.State = v1alpha1.BGPConnecting
	}
	s.opts.Status.SetBGPSession(session)
}

// BGPPeerRemoved forgets a peer this node no longer talks to.
func (s *Speaker) BGPPeerRemoved(peer string) {
	bgpSessionUp.DeleteLabelValues(peer, s.opts.NodeName)
}
