package framework

import (
	"maps"
	"testing"
)

func TestRequestBodies(t *testing.T) {
	tests := []struct {
		name       string
		exposition string
		want       map[string]RequestBodies
	}{
		{
			name: "by resource and verb, groups added up",
			exposition: `# HELP apiserver_request_body_size_bytes [ALPHA] Apiserver request body size in bytes broken out by resource and verb.
# TYPE apiserver_request_body_size_bytes histogram
apiserver_request_body_size_bytes_bucket{group="",resource="events",verb="create",le="50000"} 3
apiserver_request_body_size_bytes_bucket{group="",resource="events",verb="create",le="+Inf"} 3
apiserver_request_body_size_bytes_sum{group="",resource="events",verb="create"} 912
apiserver_request_body_size_bytes_count{group="",resource="events",verb="create"} 3
apiserver_request_body_size_bytes_bucket{group="ironlb.io",resource="speakerstatuses",verb="patch",le="+Inf"} 2
apiserver_request_body_size_bytes_sum{group="ironlb.io",resource="speakerstatuses",verb="patch"} 600
apiserver_request_body_size_bytes_count{group="ironlb.io",resource="speakerstatuses",verb="patch"} 2
apiserver_request_body_size_bytes_bucket{group="other.io",resource="speakerstatuses",verb="patch",le="+Inf"} 1
apiserver_request_body_size_bytes_sum{group="other.io",resource="speakerstatuses",verb="patch"} 100
apiserver_request_body_size_bytes_count{group="other.io",resource="speakerstatuses",verb="patch"} 1
# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="events",verb="POST"} 3
`,
			want: map[string]RequestBodies{
				"events create":         {Bytes: 912, Requests: 3},
				"speakerstatuses patch": {Bytes: 700, Requests: 3},
			},
		},
		{
			name:       "no writes yet",
			exposition: "# TYPE apiserver_request_total counter\napiserver_request_total{verb=\"GET\"} 1\n",
			want:       map[string]RequestBodies{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestBodies([]byte(tt.exposition))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
