package migrate

import "fmt"

// Ref names a source resource in messages: Kind/namespace/name, or
// Kind/name for cluster-scoped resources. A Ref without a Kind names a
// place in the input instead, such as "pools.yaml document 3".
type Ref struct {
	Kind, Namespace, Name string
}

func (r Ref) String() string {
	switch {
	case r.Kind == "":
		return r.Name
	case r.Namespace == "":
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Severity says whether a finding lost part of the source configuration.
type Severity int

const (
	// Dropped: something the source configured is not in the result.
	Dropped Severity = iota
	// Note: carried over, but changed, or needing an action from the user.
	Note
)

// Finding is one line of the report: what happened to one field of one
// source resource.
type Finding struct {
	Severity Severity
	Ref      Ref
	// Field is the path in the source resource, e.g. spec.addresses[1];
	// empty when the finding is about the resource as a whole.
	Field   string
	Message string
}

// String formats the finding as "Kind/namespace/name field: message".
func (f Finding) String() string {
	if f.Field == "" {
		return f.Ref.String() + ": " + f.Message
	}
	return f.Ref.String() + " " + f.Field + ": " + f.Message
}

// Line formats the finding as one line of the report, saying first
// whether it lost something.
func (f Finding) Line() string {
	if f.Severity == Note {
		return "note: " + f.String()
	}
	return "not carried over: " + f.String()
}

// report collects findings in the order they are made, which follows the
// input, so the output is stable.
type report struct {
	findings []Finding
}

func (r *report) drop(ref Ref, field, format string, args ...any) {
	r.findings = append(r.findings, Finding{Dropped, ref, field, fmt.Sprintf(format, args...)})
}

func (r *report) note(ref Ref, field, format string, args ...any) {
	r.findings = append(r.findings, Finding{Note, ref, field, fmt.Sprintf(format, args...)})
}
