package provider

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
)

// keptData reads the last-good ConfigMap's data, nil while it does not exist.
func (c *testCloud) keptData(t *testing.T) map[string]string {
	t.Helper()
	cm, err := c.client.CoreV1().ConfigMaps(config.DefaultNamespace).Get(context.Background(), config.LastGoodName(config.DefaultConfigMapName), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return cm.Data
}

// TestKeptConfigs: the provider keeps the last good config and the earlier
// ones still covering held addresses in the API, and serves from them when
// ironlb-config is deleted, also after a restart.
func TestKeptConfigs(t *testing.T) {
	ctx := context.Background()
	c := startTestCloud(t, testConfig)
	configMaps := c.client.CoreV1().ConfigMaps(config.DefaultNamespace)
	waitFor(t, func() bool { return c.keptData(t)[config.ConfigMapKey] == testConfig })
	held, err := c.ensure(t, service("default", "held"))
	if err != nil {
		t.Fatal(err)
	}

	// The pool holding the address goes: the config that covers it is kept
	// beside the new one.
	const fresh = "pools:\n- name: fresh\n  addresses: [198.51.100.0/30]\n"
	if _, err := configMaps.Update(ctx, configMap(fresh), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		d := c.keptData(t)
		return d[config.ConfigMapKey] == fresh && d["earlier-1.yaml"] == testConfig
	})

	// ironlb-config deleted: a warning, and the last good config keeps
	// serving; the kept configs stay as they are.
	c.events()
	if err := configMaps.Delete(ctx, config.DefaultConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var events []string
	waitFor(t, func() bool {
		events = append(events, c.events()...)
		return hasEvent(events, "Warning ConfigMissing ironlb-config is missing; the last good config (pools fresh)")
	})
	if ips, err := c.ensure(t, service("default", "new")); err != nil || strings.Join(ips, ",") != "198.51.100.0" {
		t.Errorf("with ironlb-config deleted: got %v, %v; want 198.51.100.0 from the last good config", ips, err)
	}
	if d := c.keptData(t); len(d) != 2 || d[config.ConfigMapKey] != fresh {
		t.Errorf("kept configs changed on deletion: %v", d)
	}

	// A restart while ironlb-config is missing serves from the kept
	// configs: the held address stays, the next one comes from fresh.
	c.cancel()
	held0 := service("default", "held", withStatus(held[0]))
	new0 := service("default", "new", withStatus("198.51.100.0"))
	for _, s := range []*v1.Service{held0, new0} {
		if _, err := c.client.CoreV1().Services("default").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	restarted := startTestCloudWith(t, c.client)
	if ips, err := restarted.ensure(t, service("default", "next")); err != nil || strings.Join(ips, ",") != "198.51.100.1" {
		t.Errorf("restarted with ironlb-config missing: got %v, %v; want 198.51.100.1 from the kept config", ips, err)
	}
	if ips, err := restarted.ensure(t, held0); err != nil || strings.Join(ips, ",") != held[0] {
		t.Errorf("held service after the restart: %v, %v; want it to keep %s", ips, err, held[0])
	}

	// The held service is released and ironlb-config comes back: nothing
	// is held outside its pools, so only it is kept.
	if err := restarted.EnsureLoadBalancerDeleted(ctx, "", held0); err != nil {
		t.Fatal(err)
	}
	if _, err := configMaps.Create(ctx, configMap(fresh), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		d := restarted.keptData(t)
		return len(d) == 1 && d[config.ConfigMapKey] == fresh
	})
}
