package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/test/framework"
)

// kind is what a contestant runs.
type kind int

const (
	kindIronLB kind = iota
	kindKubeVIP
	kindMetalLB
)

// contestant is one entry of -contestants: an implementation run on its own
// fresh control plane under the same load as the others.
type contestant struct {
	// name is as given on the command line, e.g. "ironlb:syncs=1".
	name string
	kind kind
	// syncs, for ironlb, replaces the manifest's --concurrent-service-syncs;
	// 0 keeps ironlb exactly as installed.
	syncs int
}

// Contestant names; "kube-vip-cloud-provider" is accepted for "kube-vip".
const (
	nameIronLB  = "ironlb"
	nameKubeVIP = "kube-vip"
	nameMetalLB = "metallb"
)

const defaultContestants = nameIronLB + "," + nameKubeVIP + "," + nameMetalLB

func parseContestant(s string) (contestant, error) {
	s = strings.TrimSpace(s)
	base, param, hasParam := strings.Cut(s, ":")
	switch base {
	case nameIronLB:
		c := contestant{name: s, kind: kindIronLB}
		if !hasParam {
			return c, nil
		}
		v, ok := strings.CutPrefix(param, "syncs=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 1 {
			return c, fmt.Errorf("contestant %q: the only option is syncs=N, N a positive integer", s)
		}
		c.syncs = n
		return c, nil
	case nameKubeVIP, framework.PeerKubeVIP.Name:
		if hasParam {
			return contestant{}, fmt.Errorf("contestant %q takes no options", s)
		}
		return contestant{name: nameKubeVIP, kind: kindKubeVIP}, nil
	case nameMetalLB:
		if hasParam {
			return contestant{}, fmt.Errorf("contestant %q takes no options", s)
		}
		return contestant{name: nameMetalLB, kind: kindMetalLB}, nil
	}
	return contestant{}, fmt.Errorf("unknown contestant %q (want %s, %s:syncs=N, %s or %s)", s, nameIronLB, nameIronLB, nameKubeVIP, nameMetalLB)
}

// parseContestants reads a comma-separated list; a name given twice is an
// error (its run would only repeat).
func parseContestants(s string) ([]contestant, error) {
	var out []contestant
	for _, f := range strings.Split(s, ",") {
		c, err := parseContestant(f)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o contestant) bool { return o.name == c.name }) {
			return nil, fmt.Errorf("contestant %q given twice", c.name)
		}
		out = append(out, c)
	}
	return out, nil
}

func (c contestant) peer() (framework.Peer, bool) {
	switch c.kind {
	case kindKubeVIP:
		return framework.PeerKubeVIP, true
	case kindMetalLB:
		return framework.PeerMetalLB, true
	}
	return framework.Peer{}, false
}

// label names the contestant in reports: peers with their versions.
func (c contestant) label() string {
	p, ok := c.peer()
	if !ok {
		return c.name
	}
	name := p.Name
	if c.kind == kindMetalLB {
		name = "metallb-controller"
	}
	if v, err := p.Version(); err == nil {
		return name + " " + v
	}
	return name
}

// dirName is the contestant's folder under -logs.
func (c contestant) dirName() string {
	return strings.NewReplacer(":", "-", "=", "-").Replace(c.name)
}

// addresses returns the load-balancer addresses a contestant gave svc, where
// that contestant writes them: kube-vip-cloud-provider puts them in an
// annotation (its service controller's status write carries none); ironlb
// and MetalLB in status.loadBalancer.ingress.
func (c contestant) addresses(svc *v1.Service) []string {
	if c.kind == kindKubeVIP {
		return kubeVIPAddresses(svc)
	}
	return framework.IngressIPs(svc)
}

// kubeVIPAnnotation is where kube-vip-cloud-provider v0.0.12 records the
// addresses it assigned (comma-separated, one per family).
const kubeVIPAnnotation = "kube-vip.io/loadbalancerIPs"

func kubeVIPAddresses(svc *v1.Service) []string {
	v := strings.TrimSpace(svc.Annotations[kubeVIPAnnotation])
	if v == "" {
		return nil
	}
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// ccmManifest is the install manifest whose ironlb-ccm container arguments
// the "ironlb" contestant runs with.
const ccmManifest = "manifests/base/ccm.yaml"

// installedArgs returns the arguments of the ironlb-ccm container in
// manifests/base/ccm.yaml (read at run time, so the benchmark measures what
// the install runs), minus those that make no sense outside its pod: see
// keepOutsidePod.
func installedArgs(root string) (kept, dropped []string, err error) {
	path := filepath.Join(root, ccmManifest)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	args, err := deploymentArgs(data, "ironlb-ccm", "ironlb-ccm")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ccmManifest, err)
	}
	for _, a := range args {
		if keepOutsidePod(a) {
			kept = append(kept, a)
		} else {
			dropped = append(dropped, a)
		}
	}
	return kept, dropped, nil
}

// deploymentArgs finds, in a multi-document manifest, the Deployment named
// deployment and returns the args of its container named container.
func deploymentArgs(manifest []byte, deployment, container string) ([]string, error) {
	for _, doc := range bytes.Split(manifest, []byte("\n---")) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, err
		}
		if head.Kind != "Deployment" || head.Metadata.Name != deployment {
			continue
		}
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("Deployment %s: %w", deployment, err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == container {
				if len(c.Command) > 0 {
					return nil, fmt.Errorf("container %s sets a command %q; the benchmark runs the binary with args only", container, c.Command)
				}
				return slices.Clone(c.Args), nil
			}
		}
		return nil, fmt.Errorf("Deployment %s has no container %s", deployment, container)
	}
	return nil, fmt.Errorf("no Deployment %s", deployment)
}

// keepOutsidePod reports whether a manifest argument of ironlb-ccm is kept
// for a run outside its pod. Dropped are only what cannot work here: a value
// that is an absolute path (a file mounted into the pod: a kubeconfig, a
// certificate, a cloud config), and the flags saying where to reach the
// apiserver and where to serve, which framework.StartCCM sets for this
// control plane (--kubeconfig, --bind-address, --secure-port; given again
// here, the manifest's would win). Everything else, tuning included, runs as
// installed.
func keepOutsidePod(arg string) bool {
	name, value, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	switch name {
	case "kubeconfig", "master", "bind-address", "secure-port",
		"authentication-kubeconfig", "authorization-kubeconfig":
		return false
	}
	return !strings.HasPrefix(value, "/")
}

// ironlbArgs are the arguments the contestant passes to framework.StartCCM:
// the installed ones, with --concurrent-service-syncs replaced when the
// contestant says so.
func (c contestant) ironlbArgs(installed []string) []string {
	if c.syncs == 0 {
		return slices.Clone(installed)
	}
	var out []string
	for _, a := range installed {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); name != "concurrent-service-syncs" {
			out = append(out, a)
		}
	}
	return append(out, fmt.Sprintf("--concurrent-service-syncs=%d", c.syncs))
}
