package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/spec"
)

// SchemaOptions are the inputs of lfsm schema.
type SchemaOptions struct {
	IO  *IOStreams
	Out string
	// Settings selects the schema of lfsm.yaml instead of fsm.yaml's.
	Settings bool
}

func newSchemaCmd(f *Factory, runF func(*SchemaOptions) error) *cobra.Command {
	opts := &SchemaOptions{}
	cmd := &cobra.Command{
		Use:   "schema [--settings] [--out FILE]",
		Short: "Print the JSON Schema of fsm.yaml (or of lfsm.yaml)",
		Long: heredoc(`
			Print the JSON Schema that describes fsm.yaml, for editors that complete
			and check YAML as you type (for example the YAML language server).
			With --settings, the schema of the settings file lfsm.yaml instead.

			The schema checks shape only; lfsm validate checks meaning as well.
		`),
		Example: example(`
			lfsm schema --out fsm.schema.json

			# Then, at the top of fsm.yaml, for the YAML language server:
			# yaml-language-server: $schema=./fsm.schema.json

			# The settings file's schema, for lfsm.yaml
			lfsm schema --settings --out lfsm.schema.json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.IO = f.IOStreams
			if runF != nil {
				return runF(opts)
			}
			return runSchema(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Out, "out", "", "write to `FILE` instead of stdout")
	cmd.Flags().BoolVar(&opts.Settings, "settings", false, "the schema of lfsm.yaml, the settings file")
	return cmd
}

func runSchema(_ context.Context, opts *SchemaOptions) error {
	return writeResult(opts.IO, opts.Out, false, func(w io.Writer) error {
		schema := spec.Schema()
		if opts.Settings {
			schema = config.Schema()
		}
		_, err := w.Write(schema)
		return err
	})
}
