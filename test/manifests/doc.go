// Package manifests tests ironlb's install artifacts: the kustomize
// manifests (manifests/), the Helm chart (charts/ironlb) and the Dockerfile.
//
// Against a real kube-apiserver with RBAC on (test/framework), the overlays
// and the rendered chart pass a server-side dry run; the RBAC is applied and
// checked with `kubectl auth can-i` for what each component needs and what it
// must never have; and ironlb-ccm runs under its own ServiceAccount's rules
// through a whole allocation, node initialization and memberlist key
// creation. On the network lab (root), the speakers run under their RBAC and
// with exactly the capabilities the DaemonSet grants, and a VIP answers.
//
// Static checks need no control plane: the chart renders the same objects as
// the kubeadm overlay, no file holds a Secret value, the example config
// parses, every flag the manifests pass exists in the binaries, and the
// Dockerfile builds what the manifests run.
//
// Helm is built from test/manifests/helmrender, a module of its own (Helm
// follows newer k8s.io/* versions than ironlb pins), into .cache/bin on first
// use; $IRONLB_HELM overrides it. kubectl comes from $PATH (its built-in
// kustomize renders the overlays).
package manifests
