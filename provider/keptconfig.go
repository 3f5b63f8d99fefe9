package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
)

// The last-good ConfigMap (config.LastGoodName) holds the last config this
// provider accepted and the earlier ones that still say how a held address
// is announced. The speakers announce from it while ironlb-config is
// missing or invalid, and for addresses a shrunk pool no longer covers.

// loadKept reads the last-good ConfigMap, retrying until it can be read or
// ctx ends: without it a restart could forget how held addresses are
// announced.
func (c *Cloud) loadKept(ctx context.Context) error {
	name := config.LastGoodName(c.opts.ConfigName)
	return wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		cm, err := c.client.CoreV1().ConfigMaps(c.opts.ConfigNamespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.kept, c.keptData = &config.Kept{}, nil
			return true, nil
		case err != nil:
			klog.ErrorS(err, "Reading the kept configs failed; retrying", "configMap", klog.KRef(c.opts.ConfigNamespace, name))
			return false, nil
		}
		kept, err := config.ParseKept(cm.Data)
		if err != nil {
			klog.ErrorS(err, "Some kept configs do not parse; they are left out", "configMap", klog.KObj(cm))
		}
		c.kept, c.keptData = kept, cm.Data
		return true, nil
	})
}

// lastGood is the last config accepted, nil before the first.
func (c *Cloud) lastGood() *config.KeptConfig {
	if c.kept == nil {
		return nil
	}
	return c.kept.LastGood
}

// writeKept records the configs in force for the speakers: the last one
// accepted and the earlier ones still covering an address a service holds
// outside every pool. It writes only when that changed, and only once the
// allocator knows every held address.
func (c *Cloud) writeKept(ctx context.Context) error {
	c.kept.Prune(slices.Collect(maps.Keys(c.alloc.Orphans())))
	data := c.kept.Data()
	if len(data) == 0 || maps.Equal(data, c.keptData) {
		return nil
	}
	name := config.LastGoodName(c.opts.ConfigName)
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: c.opts.ConfigNamespace,
			Labels: map[string]string{"app.kubernetes.io/part-of": "ironlb", "app.kubernetes.io/managed-by": "ironlb-ccm"},
			Annotations: map[string]string{"ironlb.io/purpose": fmt.Sprintf(
				"written by ironlb-ccm: the last %s it accepted, and earlier ones still covering held addresses; the speakers announce from these while %s is missing or invalid. Do not edit.",
				c.opts.ConfigName, c.opts.ConfigName)},
		},
		Data: data,
	}
	configMaps := c.client.CoreV1().ConfigMaps(c.opts.ConfigNamespace)
	_, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = configMaps.Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing the kept configs to %s/%s: %w", c.opts.ConfigNamespace, name, err)
	}
	c.keptData = data
	klog.InfoS("Kept configs written", "configMap", klog.KObj(cm), "earlier", len(c.kept.Earlier))
	return nil
}
