#!/usr/bin/env bash
# Builds the peers bench-e2e measures ironlb-ccm against (and MetalLB's speaker,
# which bench-failover measures ironlb-speaker against), each from its own
# tools module under test/peers/<peer> (so ironlb's go.mod never requires a
# peer, and each peer builds with the dependency versions of its own release),
# into .cache/bin/<binary>-<version>, unless a binary of that version is
# already there. The version is whatever test/peers/<peer>/go.mod requires
# (metallb-speaker is built from the metallb module, so both match).
#
#   hack/ensure-peers.sh [PEER...]    # default: every peer
#
# Prints one line per peer on stdout, "<peer> <path of its binary>", in the
# order asked; progress goes to stderr. Safe to run concurrently: each build
# writes a private temporary file and renames it into place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Per peer: the module (as required in its go.mod), the main package, the
# binary's name and the linker flags (%s stands for the version); moddir names
# the folder under test/peers when it is not the peer's own name.
declare -A module pkg binary ldflags moddir
module[kube-vip-cloud-provider]=github.com/kube-vip/kube-vip-cloud-provider
pkg[kube-vip-cloud-provider]=github.com/kube-vip/kube-vip-cloud-provider
binary[kube-vip-cloud-provider]=kube-vip-cloud-provider
# As the peer's own Makefile stamps its releases.
ldflags[kube-vip-cloud-provider]='-s -X k8s.io/component-base/version.gitVersion=%s'

module[metallb]=go.universe.tf/metallb
pkg[metallb]=go.universe.tf/metallb/controller
binary[metallb]=metallb-controller
# The version is compiled in (internal/version); releases add only the commit.
ldflags[metallb]='-s'

# MetalLB's speaker, from the same module as its controller.
module[metallb-speaker]=go.universe.tf/metallb
pkg[metallb-speaker]=go.universe.tf/metallb/speaker
binary[metallb-speaker]=metallb-speaker
ldflags[metallb-speaker]='-s'
moddir[metallb-speaker]=metallb

all=(kube-vip-cloud-provider metallb metallb-speaker)

# required_version GO_MOD MODULE prints the version GO_MOD requires of MODULE
# (block or single-line require; replace lines carry "=>" and do not match).
required_version() {
	awk -v mod="$2" '
		{ sub(/\/\/.*/, "") }
		$1 == "require" { $0 = substr($0, index($0, $2)) }
		$1 == mod && $2 ~ /^v[0-9]/ { print $2; exit }
	' "$1"
}

ensure() {
	local peer="$1"
	if [[ -z "${module[$peer]:-}" ]]; then
		echo "ensure-peers: unknown peer '$peer' (known: ${all[*]})" >&2
		return 1
	fi
	local dir="$root/test/peers/${moddir[$peer]:-$peer}"
	local version
	version="$(required_version "$dir/go.mod" "${module[$peer]}")"
	if [[ -z "$version" ]]; then
		echo "ensure-peers: no ${module[$peer]} requirement in $dir/go.mod" >&2
		return 1
	fi
	local bin="$root/.cache/bin/${binary[$peer]}-$version"
	if [[ -x "$bin" ]]; then
		echo "$peer $bin"
		return 0
	fi

	mkdir -p "$(dirname "$bin")"
	local tmp
	tmp="$(mktemp "$bin.tmp.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -f '$tmp'" EXIT
	echo "ensure-peers: building $peer $version (${pkg[$peer]}) from the module proxy..." >&2
	local start=$SECONDS
	local flags="${ldflags[$peer]//%s/$version}"
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$tmp" "${pkg[$peer]}")
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "ensure-peers: built $peer $version in $((SECONDS - start))s: $bin" >&2
	echo "$peer $bin"
}

peers=("$@")
if [[ ${#peers[@]} -eq 0 ]]; then
	peers=("${all[@]}")
fi
for p in "${peers[@]}"; do
	ensure "$p"
done
