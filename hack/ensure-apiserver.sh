#!/usr/bin/env bash
# Builds the kube-apiserver the integration tests run against, from the tools
# module (test/tools), into .cache/bin/kube-apiserver-<version>, unless a binary
# of that version is already there. Prints the binary's path on stdout;
# progress goes to stderr. Safe to run concurrently: each build writes a
# private temporary file and renames it into place.
set -euo pipefail

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
	echo "ensure-apiserver: no k8s.io/kubernetes requirement in $tools/go.mod" >&2
	exit 1
fi

bin="$root/.cache/bin/kube-apiserver-$version"

# A binary built without version stamping reports v0.0.0-master, which kubectl
# and client-go cannot parse; rebuild such a binary.
if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "Kubernetes $version" ]]; then
	echo "$bin"
	exit 0
fi

major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"

mkdir -p "$(dirname "$bin")"
tmp="$(mktemp "$bin.tmp.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
echo "ensure-apiserver: building kube-apiserver $version (several minutes on a cold cache)..." >&2
start=$SECONDS
(cd "$tools" && go build -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver)
mv -f "$tmp" "$bin"
trap - EXIT
echo "ensure-apiserver: built in $((SECONDS - start))s: $("$bin" --version)" >&2
echo "$bin"
