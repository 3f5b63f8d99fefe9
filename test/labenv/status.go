package labenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
)

// PluginStatus is the part of `kubectl ironlb status -o json` the tests read.
type PluginStatus struct {
	Services []struct {
		Namespace   string   `json:"namespace"`
		Name        string   `json:"name"`
		IP          string   `json:"ip"`
		Pool        string   `json:"pool"`
		Mode        string   `json:"mode"`
		AnnouncedBy []string `json:"announcedBy"`
	} `json:"services"`
	Speakers []struct {
		Node          string   `json:"node"`
		State         string   `json:"state"`
		Announcements int      `json:"announcements"`
		BGPPools      []string `json:"bgpPools"`
		BGPSessions   []struct {
			Peer  string `json:"peer"`
			State string `json:"state"`
		} `json:"bgpSessions"`
	} `json:"speakers"`
}

// PluginStatus runs `kubectl ironlb status -o json` on the client host, as
// an operator on the LAN would, with the admin kubeconfig.
func (e *Env) PluginStatus(ctx context.Context) (*PluginStatus, error) {
	out, err := e.Lab.Client().Exec(ctx, filepath.Join(e.binDir, "kubectl-ironlb"), "status", "-o", "json", "--kubeconfig", e.CP.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubectl ironlb status: %w", err)
	}
	var st PluginStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("kubectl ironlb status -o json: %w\n%s", err, out)
	}
	return &st, nil
}

// AnnouncedBy is what `kubectl ironlb status` says about who announces ip
// for a service, sorted.
func (e *Env) AnnouncedBy(ctx context.Context, namespace, name string, ip netip.Addr) ([]string, error) {
	st, err := e.PluginStatus(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range st.Services {
		if s.Namespace == namespace && s.Name == name && s.IP == ip.String() {
			return slices.Sorted(slices.Values(s.AnnouncedBy)), nil
		}
	}
	return nil, fmt.Errorf("kubectl ironlb status does not list %s/%s %s", namespace, name, ip)
}
