#!/usr/bin/env bash
# Installs the Debian packages ironlb's integration tests need, only those
# that are missing. Silent when there is nothing to do.
set -euo pipefail

# etcd-server: the control plane's store. The rest: routing daemons,
# neighbour-discovery and capture tools for the data-plane tests, and nft to
# cut the speakers' memberlist port in the partition test. The real-node lab
# (test/nodelab): containerd, runc and the CNI plugins run the pods; iptables
# and conntrack are kube-proxy's.
packages=(
	etcd-server
	frr
	bird2
	arping
	ndisc6
	iproute2
	tcpdump
	nftables
	containerd
	runc
	containernetworking-plugins
	iptables
	conntrack
)

missing=()
for pkg in "${packages[@]}"; do
	if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]} == 0)); then
	exit 0
fi

sudo=()
if ((EUID != 0)); then
	sudo=(sudo)
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "ensure-deps: done" >&2
