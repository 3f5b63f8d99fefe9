package announcer

import "testing"

func TestIPVSAnswersARP(t *testing.T) {
	cases := []struct {
		conf string
		want bool
	}{
		{"mode: ipvs\nipvs:\n  strictARP: false\n", true},
		{"mode: ipvs\n", true},
		{"mode: ipvs\nipvs:\n  strictARP: true\n", false},
		{"mode: iptables\n", false},
		{"mode: \"\"\n", false},
		{"not: [yaml", false},
	}
	for _, c := range cases {
		if got := ipvsAnswersARP(c.conf); got != c.want {
			t.Errorf("%q: %v, want %v", c.conf, got, c.want)
		}
	}
}
