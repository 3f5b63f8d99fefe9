#!/usr/bin/env bash
# Builds Kubernetes binaries from the tools module (test/tools) into
# .cache/bin/<name>-<version>, each unless a binary of that version is already
# there: kube-apiserver for the integration tests; kubelet, kube-proxy,
# kube-controller-manager and kube-scheduler for the real-node lab
# (test/nodelab). Usage: ensure-kube.sh NAME... Prints each binary's path on
# stdout, one per line; progress goes to stderr. Safe to run concurrently:
# each build writes a private temporary file and renames it into place.
set -euo pipefail

if (($# == 0)); then
	echo "usage: ensure-kube.sh kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy..." >&2
	exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/test/tools"

# The version is whatever test/tools/go.mod requires (block or single-line
# require; replace lines carry "=>" and do not match).
version="$(awk '
	{ sub(/\/\/.*/, "") }
	$1 == "require" { $0 = substr($0, index($0, $2)) }
	$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }
' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "ensure-kube: no k8s.io/kubernetes requirement in $tools/go.mod" >&2
	exit 1
fi

major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
mkdir -p "$root/.cache/bin"

for name in "$@"; do
	case "$name" in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) ;;
	*)
		echo "ensure-kube: unknown binary $name" >&2
		exit 2
		;;
	esac
	bin="$root/.cache/bin/$name-$version"
	# A binary built without version stamping reports v0.0.0-master, which
	# kubectl and client-go cannot parse; rebuild such a binary.
	if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "Kubernetes $version" ]]; then
		echo "$bin"
		continue
	fi
	tmp="$(mktemp "$bin.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "ensure-kube: building $name $version (minutes on a cold cache)..." >&2
	start=$SECONDS
	(cd "$tools" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "k8s.io/kubernetes/cmd/$name")
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "ensure-kube: built $name in $((SECONDS - start))s: $("$bin" --version)" >&2
	echo "$bin"
done
