package detach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Check returns the pid of the server if it runs and said it is ready.
// Otherwise the error says that it is not running, or not ready: starting,
// or stopping (the ready file goes first on the way out).
func (s Server) Check() (pid int, err error) {
	pid, ok := s.Running()
	if !ok {
		return 0, errors.New("not running")
	}
	if !s.Ready() {
		return pid, fmt.Errorf("starting or stopping (pid %d), not ready; see %s", pid, s.LogPath())
	}
	return pid, nil
}

// probeTimeout bounds ProbeAPIServer.
const probeTimeout = 5 * time.Second

// ProbeAPIServer ends a status check of the ready server pid, which runs a
// Kubernetes control plane: it asks the apiserver at host, through client,
// for /readyz, and says "running (pid N), <host> ready" on stderr if it
// answers within 5 s.
func ProbeAPIServer(pid int, host string, client kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("running (pid %d) but %s is not ready: %w", pid, host, err)
	}
	fmt.Fprintf(os.Stderr, "running (pid %d), %s ready\n", pid, host)
	return nil
}
