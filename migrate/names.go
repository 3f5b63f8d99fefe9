package migrate

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// names hands out unique DNS labels, the form ironlb requires for pool and
// peer names, keeping the source's name whenever it already is one.
type names struct {
	used map[string]bool
}

func newNames() *names {
	return &names{used: map[string]bool{}}
}

// claim returns want if it is a free DNS label, or else the closest free
// one: invalid characters become '-', and a suffix -2, -3... is added.
func (n *names) claim(want, fallback string) string {
	base := toLabel(want)
	if base == "" {
		base = fallback
	}
	name := base
	for i := 2; n.used[name]; i++ {
		suffix := "-" + strconv.Itoa(i)
		name = strings.TrimRight(truncate(base, validation.DNS1123LabelMaxLength-len(suffix)), "-") + suffix
	}
	n.used[name] = true
	return name
}

// toLabel turns s into a DNS label (lowercase alphanumerics and '-', at
// most 63 characters, alphanumeric at both ends), "" if nothing is left.
func toLabel(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(truncate(strings.Trim(b.String(), "-"), validation.DNS1123LabelMaxLength), "-")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
