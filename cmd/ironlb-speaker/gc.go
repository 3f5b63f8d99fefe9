package main

import (
	"fmt"
	"strconv"
)

// The speaker is a node agent: most of its heap is caches that change
// little, and its container has a memory limit. Its collector settings
// follow from that unless the environment sets Go's own (GOGC, GOMEMLIMIT).

// speakerGCPercent is the speaker's GOGC unless the environment sets one:
// collecting when the heap grows by half rather than doubling keeps a node
// agent's memory nearer what it holds. At 10,000 Services that was 100-104
// MiB rather than 119-124, for about 40 % more CPU while objects churn and
// none while they do not (docs/scale.md).
const speakerGCPercent = 50

// memoryLimitEnv names the container's memory limit in bytes, which the
// DaemonSet passes from the downward API (resourceFieldRef limits.memory).
const memoryLimitEnv = "IRONLB_MEMORY_LIMIT"

// softLimitPercent is the share of the container's limit the Go runtime's
// soft limit gets. Near it the runtime collects harder rather than let the
// kernel kill the speaker, which would take its addresses away until the
// others notice. The rest is for what the runtime does not count: the
// binary's code and data mapped in (most of the idle RSS is not heap).
const softLimitPercent = 75

// gcSettings is how the speaker's collector is set up.
type gcSettings struct {
	// gcPercent is applied when setGCPercent is set.
	gcPercent    int
	setGCPercent bool
	// memoryLimit is the soft limit in bytes; 0 leaves the runtime's.
	memoryLimit int64
}

// gcSettingsFrom derives the settings from the environment (lookup is
// os.LookupEnv). An unreadable memory limit is an error naming it; the
// other settings still apply.
func gcSettingsFrom(lookup func(string) (string, bool)) (gcSettings, error) {
	var s gcSettings
	if _, set := lookup("GOGC"); !set {
		s.gcPercent, s.setGCPercent = speakerGCPercent, true
	}
	if _, set := lookup("GOMEMLIMIT"); set {
		return s, nil
	}
	raw, set := lookup(memoryLimitEnv)
	if !set || raw == "" {
		return s, nil
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		return s, fmt.Errorf("%s=%q: want the container's memory limit in bytes (resourceFieldRef limits.memory); no soft memory limit set", memoryLimitEnv, raw)
	}
	s.memoryLimit = int64(float64(limit) * softLimitPercent / 100)
	return s, nil
}
