// Command kubectl-ironlb is ironlb's kubectl plugin (`kubectl ironlb ...`):
// status reads what ironlb is doing from the cluster, validate checks a
// config offline with the validator ironlb-ccm uses, import converts
// MetalLB, OpenELB and PureLB resources into an ironlb config.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(run(os.Args[1:], streams))
}

// exitError carries a command's exit status: 1 for "checked, and found
// wrong" (an invalid config), where any other error exits 2 (usage, I/O,
// the cluster unreachable). err, when set, is printed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// run executes one command line and returns the process exit status.
func run(args []string, streams genericiooptions.IOStreams) int {
	root := newRootCommand(streams)
	root.SetArgs(args)
	err := root.Execute()
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if exit.err != nil {
			fmt.Fprintf(streams.ErrOut, "error: %v\n", exit.err)
		}
		return exit.code
	default:
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		return 2
	}
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-ironlb",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl ironlb"},
		Short:         "See and manage ironlb, the bare-metal load balancer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetIn(streams.In)
	root.AddCommand(newStatusCommand(streams))
	root.AddCommand(newValidateCommand(streams))
	root.AddCommand(newImportCommand(streams))
	return root
}

func readFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}
