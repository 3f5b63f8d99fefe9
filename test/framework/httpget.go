package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPGetFrom fetches url from inside network namespace netns ("" for the
// caller's), over a fresh connection each time (so every call resolves and
// routes anew, as a failover test needs), and returns the body. A status
// other than 200 is an error. A ctx without deadline is bounded to 10 s.
func HTTPGetFrom(ctx context.Context, netns, url string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	transport := &http.Transport{DisableKeepAlives: true, Proxy: nil} // never the environment's proxy
	if netns != "" {
		transport.DialContext = NetnsDialer(netns)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
