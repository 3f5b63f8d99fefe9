package main

import (
	"strings"
	"testing"
)

func TestGCSettingsFrom(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    gcSettings
		wantErr string
	}{
		{"nothing set: GOGC 50, no soft limit", nil, gcSettings{gcPercent: 50, setGCPercent: true}, ""},
		{"a 128 MiB container: 96 MiB soft limit", map[string]string{memoryLimitEnv: "134217728"},
			gcSettings{gcPercent: 50, setGCPercent: true, memoryLimit: 100663296}, ""},
		{"GOGC set: left to the runtime", map[string]string{"GOGC": "100", memoryLimitEnv: "134217728"},
			gcSettings{memoryLimit: 100663296}, ""},
		{"GOMEMLIMIT set: it wins", map[string]string{"GOMEMLIMIT": "200MiB", memoryLimitEnv: "134217728"},
			gcSettings{gcPercent: 50, setGCPercent: true}, ""},
		{"empty: no limit", map[string]string{memoryLimitEnv: ""}, gcSettings{gcPercent: 50, setGCPercent: true}, ""},
		{"a quantity rather than bytes", map[string]string{memoryLimitEnv: "128Mi"},
			gcSettings{gcPercent: 50, setGCPercent: true}, `IRONLB_MEMORY_LIMIT="128Mi"`},
		{"zero", map[string]string{memoryLimitEnv: "0"}, gcSettings{gcPercent: 50, setGCPercent: true}, `IRONLB_MEMORY_LIMIT="0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gcSettingsFrom(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if got != tt.want {
				t.Errorf("settings %+v, want %+v", got, tt.want)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
