#!/usr/bin/env bash
# Builds the kube-apiserver the integration tests run against, from the tools
# module (test/tools), into .cache/bin/kube-apiserver-<version>, unless a binary
# of that version is already there. Prints the binary's path on stdout;
# progress goes to stderr.
exec bash "$(dirname "${BASH_SOURCE[0]}")/ensure-kube.sh" kube-apiserver
