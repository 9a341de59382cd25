package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/spec"
)

// BuildOptions are the inputs of lfsm build.
type BuildOptions struct {
	IO *IOStreams
	// WorkDir is where diagnostics' paths are made relative to.
	WorkDir string
	File    string
	Out     string
	Force   bool
	Output  string
	// Target aws builds the Lambda artifact; Arch is its architecture.
	Target config.Target
	Arch   string
}

// BuildResult is what lfsm build --output json prints.
type BuildResult struct {
	FormatVersion string       `json:"format_version"`
	OK            bool         `json:"ok"`
	Build         build.Result `json:"build"`
	Diagnostics   *spec.Report `json:"diagnostics"`
}

func newBuildCmd(f *Factory, runF func(*BuildOptions) error) *cobra.Command {
	opts := &BuildOptions{}
	cmd := &cobra.Command{
		Use:   "build [-f FILE] [--out PATH] [--force] [--arch arm64|amd64] [--output text|json]",
		Short: "Build the project's worker binary",
		Long: heredoc(`
			Build the binary that runs the project's machines with its Go actions:
			check every action reference of the spec, generate a main package in
			.lfsm/gen, and compile it (by default to .lfsm/bin/<module name>).
			The project is the Go module that holds the spec. lfsm run and lfsm
			dev build first, so this is only needed to build ahead of time.

			The lfsm module is served to the go command from lfsm's own copy, so
			building works offline; the project's go.mod gets an ordinary require.
			A go.mod that already replaces github.com/lfsm/lfsm is used as it is,
			and neither it nor go.sum is changed.
			A build whose inputs did not change since the last one is skipped.

			With --target aws (or LFSM_TARGET, or target in lfsm.yaml) it builds
			the AWS Lambda artifact instead: bootstrap for linux/arm64 (--arch
			amd64 for x86_64), without the local store, stripped, zipped to
			.lfsm/lambda/<module name>.zip with fixed timestamps so the same
			sources give the same SHA-256; it prints the zip's path, SHA-256 and
			size.

			Bad action references are reported at file:line:col (exit status 1).
			Progress goes to stderr.
		`),
		Example: example(`
			lfsm build
			lfsm build -f specs/orders.yaml --out bin/orders
			lfsm build --target aws
			lfsm build --target aws --arch amd64 --output json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if opts.Arch != "arm64" && opts.Arch != "amd64" {
				return usageErrorf("invalid --arch %q: arm64 or amd64", opts.Arch)
			}
			opts.IO, opts.WorkDir, opts.Target = f.IOStreams, f.WorkDir, f.Config.Target
			if cmd.Flags().Changed("arch") && opts.Target != config.TargetAWS {
				return usageErrorf("--arch is for the Lambda artifact: use it with --target aws")
			}
			if runF != nil {
				return runF(opts)
			}
			return runBuild(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", "fsm.yaml", "spec `FILE` to build")
	fl.StringVar(&opts.Out, "out", "", "write the binary to `PATH` (default .lfsm/bin/<module name>)")
	fl.BoolVar(&opts.Force, "force", false, "build even when nothing changed")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	fl.StringVar(&opts.Arch, "arch", "arm64", "Lambda architecture with --target aws (`ARCH`: arm64|amd64)")
	return cmd
}

func runBuild(ctx context.Context, opts *BuildOptions) error {
	out := opts.Out
	if out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		out = abs
	}
	bo := build.BuildOptions{Out: out, Force: opts.Force}
	if opts.Target == config.TargetAWS {
		bo.Lambda, bo.GOARCH = true, opts.Arch
	}
	res, diags, err := buildProjectWith(ctx, opts.IO, opts.WorkDir, opts.File, bo, opts.Output != outputJSON)
	if opts.Output == outputJSON {
		if err != nil && err != errSilent {
			return err
		}
		rep := spec.NewReport(diags)
		if werr := writeJSON(opts.IO.Out, BuildResult{FormatVersion: "1", OK: err == nil, Build: res, Diagnostics: &rep}); werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	verb := "built"
	if res.UpToDate {
		verb = "up to date:"
	}
	if z := res.Zip; z != nil {
		_, err = fmt.Fprintf(opts.IO.Out, "%s %s (%s)\nsha256 %s\nsize %d bytes (%.1f MB)\n", verb, relTo(opts.WorkDir, z.Path),
			res.Duration.Round(time.Millisecond), z.SHA256, z.Size, float64(z.Size)/(1<<20))
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "%s %s (%s)\n", verb, relTo(opts.WorkDir, res.Binary), res.Duration.Round(time.Millisecond))
	return err
}

// buildProject builds the project of specFile. Diagnostics are printed to
// stderr (in text mode) and make the error errSilent; progress goes to stderr
// when progress is set.
func buildProject(ctx context.Context, ios *IOStreams, workDir, specFile, out string, force, progress bool) (build.Result, spec.Diagnostics, error) {
	return buildProjectWith(ctx, ios, workDir, specFile, build.BuildOptions{Out: out, Force: force}, progress)
}

// buildProjectWith is buildProject with more of build.BuildOptions (Dir,
// SpecPath and Logger are filled in).
func buildProjectWith(ctx context.Context, ios *IOStreams, workDir, specFile string, bo build.BuildOptions, progress bool) (build.Result, spec.Diagnostics, error) {
	abs, err := filepath.Abs(specFile)
	if err != nil {
		return build.Result{}, nil, fmt.Errorf("spec %s: %w", specFile, err)
	}
	if _, _, err := loadSpec(specFile, spec.ValidateOptions{}); err != nil {
		return build.Result{}, nil, err
	}
	dir := build.FindModuleRoot(filepath.Dir(abs))
	if dir == "" {
		return build.Result{}, nil, fmt.Errorf("build %s: no go.mod in its directory or above: the project must be a Go module (lfsm init scaffolds one), or use --simulate", specFile)
	}
	var logger *slog.Logger
	stop := func() {}
	if progress {
		pr := newProgress(ios.ErrOut, "build: ", ios.ErrOutIsTerminal)
		defer pr.Stop()
		logger, stop = slog.New(pr), pr.Stop
	}
	bo.Dir, bo.SpecPath, bo.Logger = dir, abs, logger
	res, diags, err := build.Build(ctx, bo)
	stop()
	if errors.Is(err, build.ErrLFSMModule) {
		return res, diags, specOnlyError(specFile, "")
	}
	if err != nil {
		return res, diags, err
	}
	diags.Sort()
	if diags.HasErrors() {
		if progress {
			if err := spec.WriteText(ios.ErrOut, diags, workDir); err != nil {
				return res, diags, fmt.Errorf("write diagnostics: %w", err)
			}
		}
		return res, diags, errSilent
	}
	return res, diags, nil
}

// specOnlyError explains that the spec at file is a spec-only example (it
// lies in the lfsm module, build.ErrLFSMModule) and how to walk it anyway.
// machine, when known, goes in the suggested command.
func specOnlyError(file, machine string) error {
	if machine == "" {
		machine = "MACHINE"
	}
	return fmt.Errorf("%s is a spec-only example: %w; walk it without user code: lfsm run -f %s -m %s --simulate (or make a project of your own with lfsm init)",
		file, build.ErrLFSMModule, file, machine)
}

// relTo is p relative to dir when it lies below it, else p.
func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
