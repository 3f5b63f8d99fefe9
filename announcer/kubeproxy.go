package announcer

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

// kubeProxyConfig is the part of kube-proxy's configuration that matters
// here, as kubeadm stores it in kube-system/kube-proxy.
type kubeProxyConfig struct {
	Mode string `json:"mode"`
	IPVS struct {
		StrictARP bool `json:"strictARP"`
	} `json:"ipvs"`
}

// ipvsAnswersARP reads kube-proxy's kubeadm ConfigMap and reports whether it
// runs in IPVS mode without strictARP: then kube-proxy puts every
// LoadBalancer address on kube-ipvs0 and every node answers ARP for it,
// which breaks layer2 mode whatever the speaker does.
func ipvsAnswersARP(data string) bool {
	var cfg kubeProxyConfig
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		return false
	}
	return cfg.Mode == "ipvs" && !cfg.IPVS.StrictARP
}

// kubeProxyRecheck is how often the speaker reads kube-proxy's
// configuration again: an operator who sets strictARP sees the warning go
// within it (kube-proxy itself needs a restart to apply it).
var kubeProxyRecheck = time.Minute

// kubeProxyAnswersARP remembers what the last read of kube-proxy's
// configuration said, so that each change is said once.
type kubeProxyAnswersARP struct {
	known, answers bool
}

// observe takes a read (answers: IPVS without strictARP) and returns the
// Event to record for it: a Warning when kube-proxy starts answering ARP
// (or does at the first read), a Normal one when it stops, nothing
// otherwise.
func (k *kubeProxyAnswersARP) observe(answers bool) (eventType, reason string) {
	was, known := k.answers, k.known
	k.known, k.answers = true, answers
	switch {
	case answers && (!known || !was):
		return v1.EventTypeWarning, "StrictARPDisabled"
	case !answers && known && was:
		return v1.EventTypeNormal, "StrictARPEnabled"
	}
	return "", ""
}

const (
	strictARPDisabledMessage = "kube-proxy runs in IPVS mode with strictARP: false, so every node answers ARP for every LoadBalancer IP and layer2 mode cannot work; set ipvs.strictARP: true in kube-system/kube-proxy and restart kube-proxy"
	strictARPEnabledMessage  = "kube-system/kube-proxy no longer runs IPVS without strictARP: kube-proxy (once restarted with it) stops answering ARP for LoadBalancer IPs"
)

// watchKubeProxy reads kube-proxy's kubeadm ConfigMap now and every
// kubeProxyRecheck until ctx ends, and says on this node when kube-proxy
// would answer ARP for every VIP, and when it stops (an Event each, a log
// line, ironlb_speaker_kube_proxy_answers_arp). A ConfigMap that does not
// exist (a kube-proxy configured otherwise) says no; a failed read changes
// nothing. Without the grant to read it (the K3s install, where kube-proxy
// runs inside k3s) it stops asking.
func (s *Speaker) watchKubeProxy(ctx context.Context) {
	var state kubeProxyAnswersARP
	check := func() (more bool) {
		cm, err := s.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kube-proxy", metav1.GetOptions{})
		answers := false
		switch {
		case err == nil:
			answers = ipvsAnswersARP(cm.Data["config.conf"])
		case apierrors.IsForbidden(err):
			klog.V(2).InfoS("Not allowed to read kube-system/kube-proxy: not checking kube-proxy's mode", "err", err)
			return false
		case !apierrors.IsNotFound(err):
			return true
		}
		if answers {
			kubeProxyAnswersARPGauge.Set(1)
		} else {
			kubeProxyAnswersARPGauge.Set(0)
		}
		switch eventType, reason := state.observe(answers); reason {
		case "StrictARPDisabled":
			klog.InfoS("WARNING: "+strictARPDisabledMessage, "node", s.opts.NodeName)
			s.nodeEvent(eventType, reason, "%s", strictARPDisabledMessage)
		case "StrictARPEnabled":
			klog.InfoS(strictARPEnabledMessage, "node", s.opts.NodeName)
			s.nodeEvent(eventType, reason, "%s", strictARPEnabledMessage)
		}
		return true
	}
	if !check() {
		return
	}
	t := time.NewTicker(kubeProxyRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !check() {
				return
			}
		}
	}
}
