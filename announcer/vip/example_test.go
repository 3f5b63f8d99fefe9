package vip_test

import (
	"context"
	"net/netip"

	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/neighbor"
	"github.com/ironlb/ironlb/announcer/vip"
)

// The speaker's lifecycle: clean up what a killed predecessor left, hand over
// the full set on every sync, clean up again on the way out.
func Example() {
	ctx := context.Background()
	v, err := vip.New(ctx, vip.Options{
		OnGratuitous: func(iface string, family neighbor.Family) { /* count it */ },
	})
	if err != nil {
		klog.Fatal(err)
	}
	defer v.Close()
	if err := v.Cleanup(ctx); err != nil {
		klog.ErrorS(err, "Removing leftover addresses")
	}

	err = v.SetAnnounced(ctx, map[netip.Addr]string{
		netip.MustParseAddr("198.51.100.10"): "eth0", // on eth0's subnet
		netip.MustParseAddr("203.0.113.10"):  "",     // on no node subnet: ironlb0 (or lo)
	})
	if err != nil {
		klog.ErrorS(err, "Some addresses could not be assigned")
	}
	klog.InfoS("Off-subnet addresses", "interface", v.OffSubnetInterface())

	if err := v.Cleanup(ctx); err != nil {
		klog.ErrorS(err, "Removing addresses on shutdown")
	}
}
