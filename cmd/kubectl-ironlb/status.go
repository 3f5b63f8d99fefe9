package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/ipam"
)

// Status is what `kubectl ironlb status` reports; -o json and -o yaml print
// it as is.
type Status struct {
	Config   ConfigState     `json:"config"`
	Pools    []PoolUsage     `json:"pools"`
	Services []ServiceStatus `json:"services"`
	Speakers []SpeakerState  `json:"speakers"`
}

// ConfigState says whether ironlb-config parses.
type ConfigState struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Found is false when the ConfigMap does not exist (no pools).
	Found  bool     `json:"found"`
	Errors []string `json:"errors,omitempty"`
}

// PoolUsage is one family of one pool. Size and Free are decimal strings:
// an IPv6 /64 holds more addresses than a JSON number keeps exactly.
type PoolUsage struct {
	Pool   string `json:"pool"`
	Mode   string `json:"mode"`
	Family string `json:"family"`
	Size   string `json:"size"`
	Used   int    `json:"used"`
	Free   string `json:"free"`
}

// ServiceStatus is one address of one LoadBalancer Service.
type ServiceStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// IP is empty while the service waits for an address.
	IP   string `json:"ip,omitempty"`
	Pool string `json:"pool,omitempty"`
	Mode string `json:"mode,omitempty"`
	// AnnouncedBy are the nodes whose running speaker announces IP now.
	AnnouncedBy []string `json:"announcedBy"`
}

// SpeakerState is one node's speaker, from its SpeakerStatus.
type SpeakerState struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Since is when the speaker entered State.
	Since         metav1.Time `json:"since"`
	Announcements int         `json:"announcements"`
	// BGPPools are the bgp pools whose addresses of Cluster Services this
	// node advertises, all of them (not counted in Announcements).
	BGPPools    []string              `json:"bgpPools,omitempty"`
	BGPSessions []v1alpha1.BGPSession `json:"bgpSessions,omitempty"`
}

// clock is the time ages are computed from; tests pin it.
var clock = time.Now

type statusOptions struct {
	kubeconfig      *clientcmd.ClientConfigLoadingRules
	overrides       *clientcmd.ConfigOverrides
	output          string
	configNamespace string
	configName      string
	filter          config.ClassFilter
	now             func() time.Time
}

func newStatusCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &statusOptions{
		kubeconfig:      clientcmd.NewDefaultClientConfigLoadingRules(),
		overrides:       &clientcmd.ConfigOverrides{},
		configNamespace: "ironlb-system",
		configName:      "ironlb-config",
		filter:          config.DefaultClassFilter(),
		now:             clock,
	}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Pools, LoadBalancer services and the nodes announcing them, BGP sessions",
		Long: `Show what ironlb does right now, read from the cluster only: each pool's
size, used and free addresses per family; every LoadBalancer service with its
address, pool, mode and the node(s) announcing it (from the speakers'
SpeakerStatus objects); each speaker's state and BGP sessions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "" && o.output != "json" && o.output != "yaml" {
				return fmt.Errorf("--output %q: want json or yaml (default: tables)", o.output)
			}
			restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(o.kubeconfig, o.overrides).ClientConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(restConfig)
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(restConfig)
			if err != nil {
				return err
			}
			if err := o.filter.Validate(); err != nil {
				return err
			}
			st, err := gatherStatus(cmd.Context(), client, dyn, o.configNamespace, o.configName, o.filter)
			if err != nil {
				return err
			}
			if ns := o.overrides.Context.Namespace; ns != "" {
				st.Services = slices.DeleteFunc(st.Services, func(s ServiceStatus) bool { return s.Namespace != ns })
			}
			return printStatus(streams.Out, st, o.output, o.now())
		},
	}
	// kubectl's connection flags (--kubeconfig, --context, --server, ...).
	cmd.Flags().StringVar(&o.kubeconfig.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file")
	clientcmd.BindOverrideFlags(o.overrides, cmd.Flags(), clientcmd.RecommendedConfigOverrideFlags(""))
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "json or yaml (default: tables)")
	cmd.Flags().StringVar(&o.configNamespace, "config-namespace", o.configNamespace, "namespace of the ironlb config ConfigMap")
	cmd.Flags().StringVar(&o.configName, "config-name", o.configName, "name of the ironlb config ConfigMap")
	// The same flags as ironlb-ccm's, to list the Services it serves.
	o.filter.AddFlags(cmd.Flags())
	return cmd
}

// gatherStatus reads the config and its kept ones, the Services and the
// SpeakerStatus objects: two ConfigMaps and two lists, whatever the size of
// the cluster.
func gatherStatus(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, cfgNamespace, cfgName string, filter config.ClassFilter) (*Status, error) {
	st := &Status{Config: ConfigState{Namespace: cfgNamespace, Name: cfgName}, Pools: []PoolUsage{}, Services: []ServiceStatus{}, Speakers: []SpeakerState{}}
	cfg := config.Empty()
	var current *config.Config // nil while missing or invalid
	var currentText string
	cm, err := client.CoreV1().ConfigMaps(cfgNamespace).Get(ctx, cfgName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading the config: %w", err)
	default:
		st.Config.Found = true
		currentText = cm.Data[config.ConfigMapKey]
		parsed, errs := config.Parse([]byte(currentText))
		for _, e := range errs {
			st.Config.Errors = append(st.Config.Errors, e.Error())
		}
		if len(errs) == 0 {
			cfg, current = parsed, parsed
		}
	}
	// An address resolves to its pool as the speakers resolve it: the
	// config when valid, else the kept configs that still cover it.
	var kept *config.Kept
	keptCM, err := client.CoreV1().ConfigMaps(cfgNamespace).Get(ctx, config.LastGoodName(cfgName), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading the kept configs: %w", err)
	default:
		kept, _ = config.ParseKept(keptCM.Data) // what parses
	}
	layers := config.NewLayers(current, currentText, kept)

	// Both lists are read in pages: a cluster of thousands of nodes and
	// Services would not fit one response.
	// announcers: "ip namespace/name" → nodes, from running speakers only;
	// poolAdvertisers: bgp pool → the nodes advertising its addresses of
	// Cluster Services, which no SpeakerStatus lists one by one.
	announcers := map[string][]string{}
	poolAdvertisers := map[string][]string{}
	err = eachListItem(ctx, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return dyn.Resource(v1alpha1.SpeakerStatusResource).List(ctx, opts)
	}, func(obj runtime.Object) error {
		s, err := v1alpha1.FromUnstructured(obj.(*unstructured.Unstructured))
		if err != nil {
			return fmt.Errorf("speakerstatus: %w", err)
		}
		speaker := SpeakerState{
			Node: s.Name, State: string(s.Status.State), Reason: s.Status.Reason, Since: s.Status.Since,
			Announcements: len(s.Status.Announcements), BGPSessions: s.Status.BGPSessions,
		}
		for _, p := range s.Status.BGPPools {
			speaker.BGPPools = append(speaker.BGPPools, p.Pool)
		}
		st.Speakers = append(st.Speakers, speaker)
		if s.Status.State != v1alpha1.SpeakerRunning && s.Status.State != v1alpha1.SpeakerPartitioned {
			return nil // it announces nothing
		}
		for _, a := range s.Status.Announcements {
			for _, svc := range a.Services {
				key := a.IP + " " + svc
				announcers[key] = append(announcers[key], s.Name)
			}
		}
		for _, p := range s.Status.BGPPools {
			poolAdvertisers[p.Pool] = append(poolAdvertisers[p.Pool], s.Name)
		}
		return nil
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("listing speakerstatuses (is the ironlb CRD installed?): %w", err)
	}

	var services []*v1.Service
	err = eachListItem(ctx, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return client.CoreV1().Services(metav1.NamespaceAll).List(ctx, opts)
	}, func(obj runtime.Object) error {
		if svc := obj.(*v1.Service); filter.Serves(svc) {
			services = append(services, svc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}

	// An address with a Local Service among its holders is advertised only
	// where the speakers list it; the others of a bgp pool wherever the
	// pool is advertised.
	heldByLocal := map[string]bool{}
	for _, svc := range services {
		if svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				heldByLocal[ing.IP] = true
			}
		}
	}
	inUse := map[netip.Addr]bool{}
	for _, svc := range services {
		row := ServiceStatus{Namespace: svc.Namespace, Name: svc.Name, AnnouncedBy: []string{}}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			st.Services = append(st.Services, row)
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			r := row
			r.IP = ing.IP
			nodes := announcers[ing.IP+" "+svc.Namespace+"/"+svc.Name]
			if ip, err := netip.ParseAddr(ing.IP); err == nil {
				inUse[ip] = true
				if p, _ := layers.PoolFor(ip); p != nil {
					r.Pool, r.Mode = p.Name, string(p.Mode)
					if p.Mode == config.ModeBGP && !heldByLocal[ing.IP] {
						nodes = append(slices.Clone(nodes), poolAdvertisers[p.Name]...)
					}
				}
			}
			if len(nodes) > 0 {
				r.AnnouncedBy = slices.Compact(slices.Sorted(slices.Values(nodes)))
			}
			st.Services = append(st.Services, r)
		}
	}
	slices.SortFunc(st.Services, func(a, b ServiceStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), compareIPs(a.IP, b.IP))
	})
	slices.SortFunc(st.Speakers, func(a, b SpeakerState) int { return cmp.Compare(a.Node, b.Node) })
	st.Pools = poolUsage(cfg, inUse)
	return st, nil
}

// eachListItem lists in pages of 500 and calls fn for every item.
func eachListItem(ctx context.Context, list pager.ListPageFunc, fn func(runtime.Object) error) error {
	p := pager.New(list)
	p.PageSize = 500
	return p.EachListItem(ctx, metav1.ListOptions{}, fn)
}

// poolUsage counts, per pool and family, the addresses services hold.
func poolUsage(cfg *config.Config, inUse map[netip.Addr]bool) []PoolUsage {
	alloc := ipam.New()
	if err := alloc.SetPools(cfg.PoolSpecs()); err != nil {
		return []PoolUsage{} // a parsed config always fits; nothing to show otherwise
	}
	used := map[string]int{}
	for ip := range inUse {
		if p := cfg.PoolFor(ip); p != nil {
			used[p.Name+" "+ipam.FamilyOf(ip).String()]++
		}
	}
	out := []PoolUsage{}
	for _, s := range alloc.Stats() {
		n := used[s.Pool+" "+s.Family.String()]
		free := new(big.Int).Sub(s.Size, big.NewInt(int64(n)))
		out = append(out, PoolUsage{Pool: s.Pool, Mode: string(cfg.Pool(s.Pool).Mode), Family: s.Family.String(),
			Size: s.Size.String(), Used: n, Free: free.String()})
	}
	return out
}

func compareIPs(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	if errX != nil || errY != nil {
		return cmp.Compare(a, b)
	}
	return x.Compare(y)
}

func printStatus(w io.Writer, st *Status, output string, now time.Time) error {
	switch output {
	case "json":
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case "yaml":
		data, err := yaml.Marshal(st)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return printTables(w, st, now)
}

// printTables prints kubectl-style tables, one per section.
func printTables(w io.Writer, st *Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	c := st.Config
	switch {
	case !c.Found:
		fmt.Fprintf(tw, "Config %s/%s: not found; no pools\n", c.Namespace, c.Name)
	case len(c.Errors) > 0:
		fmt.Fprintf(tw, "Config %s/%s: INVALID (ironlb keeps serving its last good config):\n", c.Namespace, c.Name)
		for _, e := range c.Errors {
			fmt.Fprintf(tw, "  %s\n", e)
		}
	default:
		fmt.Fprintf(tw, "Config %s/%s: valid\n", c.Namespace, c.Name)
	}

	fmt.Fprintln(tw, "\nPOOL\tMODE\tFAMILY\tSIZE\tUSED\tFREE")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.Pool, p.Mode, p.Family, p.Size, p.Used, p.Free)
	}

	fmt.Fprintln(tw, "\nSERVICE\tIP\tPOOL\tMODE\tANNOUNCED BY")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, orDefault(s.IP, "<pending>"),
			orDefault(s.Pool, "<none>"), orDefault(s.Mode, "<none>"), orDefault(strings.Join(s.AnnouncedBy, ","), "<none>"))
	}

	fmt.Fprintln(tw, "\nNODE\tSPEAKER\tANNOUNCING\tBGP POOLS\tSINCE")
	for _, s := range st.Speakers {
		state := s.State
		if s.Reason != "" && s.State != string(v1alpha1.SpeakerRunning) {
			state += ": " + s.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.Node, state, s.Announcements,
			orDefault(strings.Join(s.BGPPools, ","), "<none>"), age(now, s.Since))
	}

	sessions := 0
	for _, s := range st.Speakers {
		sessions += len(s.BGPSessions)
	}
	if sessions > 0 {
		fmt.Fprintln(tw, "\nNODE\tBGP PEER\tADDRESS\tSTATE\tSINCE\tREASON")
		for _, s := range st.Speakers {
			for _, b := range s.BGPSessions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Node, b.Peer, b.Address, b.State, age(now, b.Since), b.Reason)
			}
		}
	}
	return tw.Flush()
}

func age(now time.Time, t metav1.Time) string {
	if t.IsZero() {
		return "?"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
