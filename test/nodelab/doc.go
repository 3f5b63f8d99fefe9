// Package nodelab turns a network lab's nodes (package netlab) into real
// Kubernetes nodes: each runs its own containerd, kubelet and kube-proxy
// (iptables or IPVS mode), pods get addresses from the CNI bridge and
// host-local plugins, and the control plane host adds kube-controller-manager
// and kube-scheduler next to the lab's kube-apiserver. So ironlb is installed
// and tested as users run it: a Deployment and a DaemonSet onto kubelets, a
// LoadBalancer address carried by kube-proxy to real pods.
//
// # A node
//
// A node is a lab namespace <id>-nK. Its processes share one mount and UTS
// namespace (made by `unshare --mount --uts --propagation slave`, entered
// with nsenter), so containerd, kubelet and kube-proxy see the same mounts
// and the node's own hostname, and nothing they mount reaches the machine.
// Each has its own folders under the cluster's Dir, its own cgroup root
// (/ironlb-nodelab/<id>-nK in every hierarchy: each kubelet deletes cgroups
// it does not know) and its own pod subnet, routed between the nodes and
// from the control plane host:
//
//	pods of node K   198.18.(63+K).0/24, out of PodCIDR 198.18.64.0/18
//	services         the control plane's ServiceCIDR (198.18.0.0/16)
//
// # Images
//
// No registry is reached. Every node's containerd imports docker archives:
// the sandbox ("pause") and the demo app (echo, test/cmd/echo), both made
// here from static Go programs, and Options.Archives (ironlb's own, from
// `make image`, tagged as the manifests reference them).
//
// # Limits
//
// One cluster per machine at a time: the kubelet and the CNI plugins use a
// few fixed host paths (/var/lib/kubelet/device-plugins, /var/lib/cni,
// /var/log/containers, /run/containerd/s), which Close cleans of what this
// cluster put there. Start sweeps cgroups left by a crashed run whose lab is
// gone.
package nodelab
