package announcer

import (
	"context"

	v1 "k8s.io/api/core/v1"
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

// warnIfIPVSAnswersARP logs and records a Warning on this node when
// kube-proxy would answer ARP for every VIP.
func (s *Speaker) warnIfIPVSAnswersARP(ctx context.Context) {
	cm, err := s.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil || !ipvsAnswersARP(cm.Data["config.conf"]) {
		return
	}
	const msg = "kube-proxy runs in IPVS mode with strictARP: false, so every node answers ARP for every LoadBalancer IP and layer2 mode cannot work; set ipvs.strictARP: true in kube-system/kube-proxy and restart kube-proxy"
	klog.InfoS("WARNING: "+msg, "node", s.opts.NodeName)
	s.nodeEvent(v1.EventTypeWarning, "StrictARPDisabled", "%s", msg)
}
