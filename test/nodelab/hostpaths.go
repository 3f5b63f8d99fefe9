package nodelab

import (
	"os"
	"path/filepath"
	"strings"
)

// The fixed host paths the node components use (see the package
// documentation). Close removes what the cluster added to them.
const (
	cniCacheDir      = "/var/lib/cni"
	kubeletSocketDir = "/var/lib/kubelet/device-plugins"
	containerLogDir  = "/var/log/containers"
	shimSocketDir    = "/run/containerd/s"
)

// hostPaths remembers which of those paths existed before the cluster
// started, and the shim sockets already there.
type hostPaths struct {
	existed map[string]bool
	shims   map[string]bool
}

func snapshotHostPaths() hostPaths {
	h := hostPaths{existed: map[string]bool{}, shims: map[string]bool{}}
	for _, p := range []string{cniCacheDir, filepath.Join(cniCacheDir, "results"), "/var/lib/kubelet", kubeletSocketDir, containerLogDir, "/run/containerd", shimSocketDir} {
		if _, err := os.Lstat(p); err == nil {
			h.existed[p] = true
		}
	}
	entries, _ := os.ReadDir(shimSocketDir)
	for _, e := range entries {
		h.shims[e.Name()] = true
	}
	return h
}

// clean removes the CNI results of the cluster's network, the container log
// links into dir, the kubelet's device-plugin socket, the shim sockets that
// appeared, and every one of those folders the cluster created, once empty.
func (h hostPaths) clean(network, dir string, logf func(string, ...any)) {
	if h.existed == nil {
		return
	}
	// Results are named <network>-<sandbox>-<interface>; containerd also
	// keeps each sandbox's loopback result under the network cni-loopback.
	results, _ := filepath.Glob(filepath.Join(cniCacheDir, "results", network+"-*"))
	for _, r := range results {
		_ = os.Remove(r)
		sandbox := strings.TrimPrefix(filepath.Base(r), network+"-")
		if i := strings.LastIndexByte(sandbox, '-'); i > 0 {
			_ = os.Remove(filepath.Join(cniCacheDir, "results", "cni-loopback-"+sandbox[:i]+"-lo"))
		}
	}
	links, _ := os.ReadDir(containerLogDir)
	for _, l := range links {
		p := filepath.Join(containerLogDir, l.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			_ = os.Remove(p)
		}
	}
	_ = os.Remove(filepath.Join(kubeletSocketDir, "kubelet.sock"))
	shims, _ := os.ReadDir(shimSocketDir)
	for _, s := range shims {
		if !h.shims[s.Name()] {
			_ = os.Remove(filepath.Join(shimSocketDir, s.Name()))
		}
	}
	// Deepest first; a folder that existed before, or is not empty, stays.
	for _, p := range []string{filepath.Join(cniCacheDir, "results"), cniCacheDir, kubeletSocketDir, "/var/lib/kubelet",
		containerLogDir, shimSocketDir, "/run/containerd"} {
		if !h.existed[p] {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				logf("nodelab: %s left behind: %v", p, err)
			}
		}
	}
}
