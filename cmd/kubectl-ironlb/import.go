package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/migrate"
)

func newImportCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var files []string
	var configOnly bool
	sources := make([]string, 0, len(migrate.Sources))
	for _, s := range migrate.Sources {
		sources = append(sources, string(s))
	}
	cmd := &cobra.Command{
		Use:   "import " + strings.Join(sources, "|") + " -f FILE...",
		Short: "Convert MetalLB, OpenELB or PureLB resources into an ironlb config",
		Long: `Convert the resources of MetalLB, OpenELB or PureLB into an ironlb config:
the ConfigMap manifest on standard output (--config-only: config.yaml alone),
and on standard error a report of everything not carried over, or carried
over changed, naming the resource and field, and what changes on Services.

FILE holds the resources, as applied or as "kubectl get -o yaml" prints them
(several documents and Lists are fine); "-" is standard input. Pools keep the
source's names, so Services naming them keep working.

Exit status 1 when nothing usable was found.`,
		Example: `  kubectl get -n metallb-system -o yaml \
    ipaddresspools.metallb.io,l2advertisements.metallb.io,bgpadvertisements.metallb.io,bgppeers.metallb.io,communities.metallb.io,bfdprofiles.metallb.io |
    kubectl ironlb import metallb -f - > ironlb-config.yaml
  kubectl get -o yaml eips.network.kubesphere.io,bgpconfs.network.kubesphere.io,bgppeers.network.kubesphere.io > openelb.yaml
  kubectl ironlb import openelb -f openelb.yaml --config-only`,
		ValidArgs: sources,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("import takes the load balancer to import from: one of %s", strings.Join(sources, ", "))
			}
			_, err := migrate.ParseSource(args[0])
			return err
		},
		RunE: func(_ *cobra.Command, args []string) error {
			src, _ := migrate.ParseSource(args[0])
			return runImport(src, files, configOnly, streams)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, `a file of resources to import ("-": standard input); repeat for more`)
	cmd.Flags().BoolVar(&configOnly, "config-only", false, "print config.yaml alone, not the ConfigMap manifest")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func runImport(src migrate.Source, files []string, configOnly bool, streams genericiooptions.IOStreams) error {
	inputs := make([]migrate.Input, 0, len(files))
	for _, path := range files {
		data, err := readFile(path, streams.In)
		if err != nil {
			return err
		}
		inputs = append(inputs, migrate.Input{Name: path, Data: data})
	}
	res := migrate.Import(src, inputs)
	printReport(streams.ErrOut, res)
	switch {
	case res.File == nil:
		return exitError{code: 1, err: fmt.Errorf("no %s address pool or peer found that can be carried over", src)}
	case len(res.Errors) > 0:
		for _, e := range res.Errors {
			fmt.Fprintf(streams.ErrOut, "invalid: %s: %s\n", config.ConfigMapKey, e.Error())
		}
		return exitError{code: 1, err: fmt.Errorf("the converted config is refused by ironlb's validator (%d errors): please report this as a bug", len(res.Errors))}
	}
	out := res.YAML
	if !configOnly {
		var err error
		if out, err = res.ConfigMap(); err != nil {
			return err
		}
	}
	_, err := streams.Out.Write(out)
	return err
}

// printReport writes the summary, one line per finding, and the advice on
// Services.
func printReport(w io.Writer, res *migrate.Result) {
	if res.Config != nil {
		fmt.Fprintf(w, "imported from %s: %s\n", res.Source, summary(res.Config))
	}
	for _, f := range res.Findings {
		fmt.Fprintln(w, f.Line())
	}
	if res.File != nil && len(res.Services) > 0 {
		fmt.Fprintln(w, "Services:")
		for _, line := range res.Services {
			fmt.Fprintln(w, "  "+line)
		}
	}
}

func summary(cfg *config.Config) string {
	modes := map[config.Mode]int{}
	for _, p := range cfg.Pools {
		modes[p.Mode]++
	}
	var parts []string
	for _, m := range config.Modes {
		if modes[m] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", modes[m], m))
		}
	}
	s := fmt.Sprintf("%d pools", len(cfg.Pools))
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if cfg.BGP != nil {
		s += fmt.Sprintf(", bgp with %d peers and %d advertisements", len(cfg.BGP.Peers), len(cfg.BGP.Advertisements))
	}
	return s
}
