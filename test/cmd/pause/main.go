// Command pause is the real-node lab's pod sandbox image (test/nodelab): it
// holds a pod's namespaces and exits on SIGTERM or SIGINT, as
// registry.k8s.io/pause does, so the lab needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
