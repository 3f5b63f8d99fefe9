package framework

import (
	"bytes"
	"context"
	"fmt"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// RequestBodies is what the API server was sent in the bodies of one kind
// of write request.
type RequestBodies struct {
	Bytes    float64
	Requests uint64
}

// RequestBodyBytes is everything the API server has been sent in write
// request bodies since it started, by "resource verb" (e.g. "events
// create"), from its own apiserver_request_body_size_bytes histogram: the
// writes of every client, whatever its encoding or its implementation.
func (c *ControlPlane) RequestBodyBytes(ctx context.Context) (map[string]RequestBodies, error) {
	raw, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("the API server's metrics: %w", err)
	}
	out, err := requestBodies(raw)
	if err != nil {
		return nil, fmt.Errorf("the API server's metrics: %w", err)
	}
	return out, nil
}

// requestBodies reads apiserver_request_body_size_bytes from a text
// exposition.
func requestBodies(exposition []byte) (map[string]RequestBodies, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(exposition))
	if err != nil {
		return nil, err
	}
	out := map[string]RequestBodies{}
	family, ok := families["apiserver_request_body_size_bytes"]
	if !ok {
		return out, nil
	}
	for _, m := range family.GetMetric() {
		var resource, verb string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "resource":
				resource = l.GetValue()
			case "verb":
				verb = l.GetValue()
			}
		}
		key := resource + " " + verb
		b := out[key]
		b.Bytes += m.GetHistogram().GetSampleSum()
		b.Requests += m.GetHistogram().GetSampleCount()
		out[key] = b
	}
	return out, nil
}
