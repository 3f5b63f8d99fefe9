package ipam

import (
	"slices"
	"testing"
)

func TestFreeList(t *testing.T) {
	type op struct {
		take    string // address to take, or
		release string // address to release
	}
	tests := []struct {
		name       string
		ranges     []string
		avoidBuggy bool
		ops        []op
		wantSpans  []string
		wantLowest string // "" when nothing is usable
	}{
		{
			name:       "fresh",
			ranges:     []string{"203.0.113.0/24"},
			wantSpans:  []string{"203.0.113.0-203.0.113.255"},
			wantLowest: "203.0.113.0",
		},
		{
			name:       "adjacent ranges merge",
			ranges:     []string{"203.0.113.0-203.0.113.9", "203.0.113.10-203.0.113.19"},
			wantSpans:  []string{"203.0.113.0-203.0.113.19"},
			wantLowest: "203.0.113.0",
		},
		{
			name:       "take splits",
			ranges:     []string{"203.0.113.0/24"},
			ops:        []op{{take: "203.0.113.0"}, {take: "203.0.113.7"}, {take: "203.0.113.255"}},
			wantSpans:  []string{"203.0.113.1-203.0.113.6", "203.0.113.8-203.0.113.254"},
			wantLowest: "203.0.113.1",
		},
		{
			name:       "taking a taken address does nothing",
			ranges:     []string{"203.0.113.0/30"},
			ops:        []op{{take: "203.0.113.1"}, {take: "203.0.113.1"}, {take: "198.51.100.1"}},
			wantSpans:  []string{"203.0.113.0", "203.0.113.2-203.0.113.3"},
			wantLowest: "203.0.113.0",
		},
		{
			name:   "release merges with both neighbours",
			ranges: []string{"203.0.113.0/24"},
			ops: []op{
				{take: "203.0.113.5"}, {take: "203.0.113.6"}, {take: "203.0.113.7"},
				{release: "203.0.113.5"}, {release: "203.0.113.7"}, {release: "203.0.113.6"},
			},
			wantSpans:  []string{"203.0.113.0-203.0.113.255"},
			wantLowest: "203.0.113.0",
		},
		{
			name:       "family edges",
			ranges:     []string{"0.0.0.0-0.0.0.1", "255.255.255.254-255.255.255.255"},
			ops:        []op{{take: "0.0.0.0"}, {take: "255.255.255.255"}, {release: "0.0.0.0"}, {release: "255.255.255.255"}},
			wantSpans:  []string{"0.0.0.0-0.0.0.1", "255.255.255.254-255.255.255.255"},
			wantLowest: "0.0.0.0",
		},
		{
			name:       "IPv6 /0",
			ranges:     []string{"::/0"},
			ops:        []op{{take: "::"}, {take: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
			wantSpans:  []string{"::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"},
			wantLowest: "::1",
		},
		{
			name:       "avoid buggy skips .255 and .0",
			ranges:     []string{"203.0.113.255-203.0.114.3"},
			avoidBuggy: true,
			wantSpans:  []string{"203.0.113.255-203.0.114.3"},
			wantLowest: "203.0.114.1",
		},
		{
			name:       "avoid buggy with only buggy addresses",
			ranges:     []string{"203.0.113.255-203.0.114.0", "203.0.120.0"},
			avoidBuggy: true,
			wantSpans:  []string{"203.0.113.255-203.0.114.0", "203.0.120.0"},
		},
		{
			name:       "avoid buggy skips buggy-only spans between held addresses",
			ranges:     []string{"203.0.113.0-203.0.116.255"},
			avoidBuggy: true,
			ops: []op{
				{take: "203.0.113.0"}, {take: "203.0.113.1"}, {take: "203.0.113.254"},
				{take: "203.0.114.1"}, {take: "203.0.114.254"}, {take: "203.0.115.1"},
			},
			wantSpans: []string{
				"203.0.113.2-203.0.113.253", "203.0.113.255-203.0.114.0",
				"203.0.114.2-203.0.114.253", "203.0.114.255-203.0.115.0", "203.0.115.2-203.0.116.255",
			},
			wantLowest: "203.0.113.2",
		},
		{
			name:       "avoid buggy: releasing next to a buggy-only span makes it usable",
			ranges:     []string{"203.0.113.254-203.0.114.1"},
			avoidBuggy: true,
			ops:        []op{{take: "203.0.113.254"}, {take: "203.0.114.1"}, {release: "203.0.114.1"}},
			wantSpans:  []string{"203.0.113.255-203.0.114.1"},
			wantLowest: "203.0.114.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFreeList(tt.avoidBuggy)
			for _, r := range mustRanges(t, tt.ranges...) {
				f.add(span{first: r.First, last: r.Last})
			}
			for _, o := range tt.ops {
				if o.take != "" {
					f.take(addr(o.take))
				} else {
					f.release(addr(o.release))
				}
				if err := f.check(); err != nil {
					t.Fatalf("after %+v: %v", o, err)
				}
			}
			if got := f.spanStrings(); !slices.Equal(got, tt.wantSpans) {
				t.Errorf("spans = %q, want %q", got, tt.wantSpans)
			}
			got, ok := f.lowest()
			switch {
			case tt.wantLowest == "" && ok:
				t.Errorf("lowest() = %v, want none", got)
			case tt.wantLowest != "" && (!ok || got != addr(tt.wantLowest)):
				t.Errorf("lowest() = %v, %v; want %s", got, ok, tt.wantLowest)
			}
		})
	}
}
