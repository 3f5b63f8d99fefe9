// Package install installs ironlb as users do, onto real nodes (package
// nodelab: containerd, kubelet and kube-proxy on every lab node): the
// manifests with `kubectl apply -k`, or the chart with `helm install`, the
// images loaded from the archives `make image` makes. Then a client on the
// LAN reaches a real Deployment behind a LoadBalancer Service: VIP → node →
// kube-proxy → pod.
package install
