//go:build tools

// Module helmrender pins the Helm CLI that test/manifests builds to lint and
// render charts/ironlb. It is a module of its own because Helm follows a newer
// k8s.io/* line than ironlb pins (Helm v3.22 requires v0.37); nothing here is
// linked into ironlb.
package helmrender

import _ "helm.sh/helm/v3/cmd/helm"
