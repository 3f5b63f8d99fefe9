// Package v1alpha1 holds ironlb's API types: SpeakerStatus, the per-node
// record of what each speaker announces and how its BGP sessions are.
//
// The objects are read and written as unstructured data through the dynamic
// client (ToUnstructured / FromUnstructured), so the package needs no
// generated clients; the CRD is manifests/base/crd-speakerstatus.yaml.
package v1alpha1
