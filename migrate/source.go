package migrate

import "fmt"

// The API groups of the sources' resources.
const (
	metallbGroup = "metallb.io"
	openelbGroup = "network.kubesphere.io"
	purelbGroup  = "purelb.io"
)

var groupSource = map[string]Source{
	metallbGroup: MetalLB,
	openelbGroup: OpenELB,
	purelbGroup:  PureLB,
}

// skip reports a resource the source src does not read.
func skip(r *report, src Source, o *object) {
	other, known := groupSource[o.group()]
	switch {
	case known && other != src:
		r.drop(o.ref(), "", "belongs to %s (%s); skipped: run kubectl ironlb import %s for it", other.Title(), o.APIVersion, other)
	case known:
		r.drop(o.ref(), "", "%s has no ironlb equivalent; skipped", o.APIVersion)
	case src == MetalLB && o.Kind == "ConfigMap":
		r.drop(o.ref(), "", "MetalLB's ConfigMap configuration (before v0.13) is not read: convert it to resources first (MetalLB's configmaptocrs), then import those")
	default:
		r.drop(o.ref(), "", "%s does not belong to %s; skipped", describe(o), src.Title())
	}
}

func describe(o *object) string {
	if o.APIVersion == "" {
		return "kind " + o.Kind
	}
	return fmt.Sprintf("kind %s of %s", o.Kind, o.APIVersion)
}
