package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config"
)

func newValidateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check an ironlb config offline, with the messages ironlb-ccm records",
		Long: `Check an ironlb config offline, with the same messages ironlb-ccm records on
the ConfigMap. FILE is either the ConfigMap manifest (its data.config.yaml is
checked) or the bare config.yaml, "-" for standard input. Exit status 1 when
it is invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return validate(file, streams)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", `the config or ConfigMap manifest ("-": standard input)`)
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func validate(path string, streams genericiooptions.IOStreams) error {
	data, err := readFile(path, streams.In)
	if err != nil {
		return err
	}
	doc, err := configDocument(data)
	if err != nil {
		return exitError{code: 1, err: fmt.Errorf("%s: %w", path, err)}
	}
	cfg, errs := config.Parse(doc)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(streams.Out, "%s: %s\n", path, e.Error())
		}
		fmt.Fprintf(streams.Out, "%s: invalid (%d errors); ironlb would keep serving its last good config\n", path, len(errs))
		return exitError{code: 1}
	}
	fmt.Fprintf(streams.Out, "%s: valid: %d pools", path, len(cfg.Pools))
	if cfg.BGP != nil {
		fmt.Fprintf(streams.Out, ", bgp with %d peers", len(cfg.BGP.Peers))
	}
	fmt.Fprintln(streams.Out)
	return nil
}

// configDocument returns config.yaml itself: from a ConfigMap manifest, its
// data key; anything else is taken as the bare document.
func configDocument(data []byte) ([]byte, error) {
	var probe struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &probe); err != nil || probe.Kind != "ConfigMap" {
		return data, nil
	}
	var cm v1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, err
	}
	doc, ok := cm.Data[config.ConfigMapKey]
	if !ok {
		return nil, errors.New("the ConfigMap has no data." + config.ConfigMapKey)
	}
	return []byte(doc), nil
}
