package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/spec"
)

// ValidateOptions are the inputs of lfsm validate.
type ValidateOptions struct {
	IO *IOStreams
	// WorkDir is where diagnostics' paths are made relative to.
	WorkDir      string
	File         string
	CheckActions bool
	Output       string
}

func newValidateCmd(f *Factory, runF func(*ValidateOptions) error) *cobra.Command {
	opts := &ValidateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [-f FILE] [--check-actions] [--output text|json]",
		Short: "Check a spec and report every problem at once",
		Long: heredoc(`
			Load a spec (fsm.yaml and the files it imports) and check it: unknown
			targets, missing or duplicate initial states, unreachable states,
			reserved names, unknown keys, import cycles and more.

			Every problem is reported at once, sorted, at file:line:col, with a
			stable rule code in brackets. With --check-actions, action references
			must also be Go symbols (import/path.Identifier), and when the spec
			sits in a Go module (a go.mod in its directory or above) each one is
			type-checked against the Go code, as lfsm build does (go.mod and
			go.sum are left unchanged).

			With --output json the result is one JSON document (format_version "1")
			on stdout, whether or not the spec is valid.

			Exit status: 0 when there are no errors (warnings allowed), 1 when there
			are errors or the file cannot be read, 2 on a usage error.
		`),
		Example: example(`
			# Check ./fsm.yaml
			lfsm validate

			# Check another file, and that its actions are Go symbols
			lfsm validate -f examples/seed/fsm.yaml --check-actions

			# Machine-readable report
			lfsm validate --output json | jq '.diagnostics[].summary'
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runValidate(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` to check")
	fl.BoolVar(&opts.CheckActions, "check-actions", false, "also check action references: Go symbols, type-checked against the spec's Go module")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runValidate(ctx context.Context, opts *ValidateOptions) error {
	s, diags, err := loadSpec(opts.File, spec.ValidateOptions{CheckActions: opts.CheckActions})
	if err != nil {
		return err
	}
	if opts.CheckActions && s != nil && !diags.HasErrors() {
		if adiags, err := checkGoActions(ctx, opts.File, s); err != nil {
			return err
		} else if len(adiags) > 0 {
			diags = append(diags, adiags...)
			diags.Sort()
		}
	}
	if opts.Output == outputJSON {
		if err := writeJSON(opts.IO.Out, spec.NewReport(diags)); err != nil {
			return err
		}
	} else {
		if len(diags) > 0 {
			if err := spec.WriteText(opts.IO.Out, diags, opts.WorkDir); err != nil {
				return fmt.Errorf("write diagnostics: %w", err)
			}
		}
		if !diags.HasErrors() && s != nil {
			if _, err := fmt.Fprintln(opts.IO.Out, summary(opts.File, s, diags)); err != nil {
				return err
			}
		}
	}
	if diags.HasErrors() {
		return errSilent
	}
	return nil
}

// checkGoActions type-checks the action references of s when the spec at file
// sits in a Go module; references that are not Go symbols are left out, as
// spec.Validate reports them already.
func checkGoActions(ctx context.Context, file string, s *spec.Spec) (spec.Diagnostics, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", file, err)
	}
	root := build.FindModuleRoot(filepath.Dir(abs))
	if root == "" {
		return nil, nil
	}
	all, err := build.Check(ctx, root, "", s)
	if errors.Is(err, build.ErrLFSMModule) {
		return nil, fmt.Errorf("--check-actions: %w", specOnlyError(file, ""))
	}
	if err != nil {
		return nil, fmt.Errorf("check actions of %s: %w", file, err)
	}
	var diags spec.Diagnostics
	for _, d := range all {
		if d.Code != spec.CodeNotGoSymbol {
			diags = append(diags, d)
		}
	}
	return diags, nil
}

// summary is the one line validate prints for a spec without errors:
// "fsm.yaml: 1 machine, 3 states, no problems".
func summary(file string, s *spec.Spec, diags spec.Diagnostics) string {
	states := 0
	for _, m := range s.Machines {
		states += len(m.States)
	}
	problems := "no problems"
	if _, warns := diags.Count(); warns > 0 {
		problems = plural(warns, "warning")
	}
	return fmt.Sprintf("%s: %s, %s, %s", file, plural(len(s.Machines), "machine"), plural(states, "state"), problems)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
