package cli

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
	"golang.org/x/mod/module"
	"golang.org/x/tools/txtar"

	"github.com/lfsm/lfsm/internal/build"
)

//go:embed scaffold/project.txtar
var scaffold []byte

// InitOptions are the inputs of lfsm init.
type InitOptions struct {
	IO      *IOStreams
	Dir     string
	Module  string
	Force   bool
	NoDeps  bool
	Output  string
	WorkDir string
}

// InitResult is what lfsm init prints; its JSON form is versioned.
type InitResult struct {
	FormatVersion string   `json:"format_version"`
	Dir           string   `json:"dir"`
	Module        string   `json:"module"`
	Files         []string `json:"files"`
}

func newInitCmd(f *Factory, runF func(*InitOptions) error) *cobra.Command {
	opts := &InitOptions{}
	cmd := &cobra.Command{
		Use:   "init DIR [--module PATH] [--force]",
		Short: "Create a project: a Go module with a machine, its actions and a test",
		Long: heredoc(`
			Create a new lfsm project in DIR: a Go module (go.mod) with the seed's
			Example machine (fsm.yaml), an actions package implementing its nine
			actions as thin shims (in each form a spec can name: a type, a
			function, a variable), a test of them, lfsm.yaml, a README and a
			.gitignore for lfsm's .lfsm directory.

			The module path defaults to example.com/<base name of DIR>. DIR must be
			empty or absent unless --force, which overwrites the files above and
			leaves any others alone.

			init then requires the lfsm module in go.mod (served from lfsm's own
			copy, offline), so that lfsm run and lfsm test work at once;
			--no-deps skips that step. The lfsm module is on no public module
			proxy: run the project's tests with lfsm test, which serves it to go
			test on any machine (a plain go test works only where the module
			cache already holds it).
		`),
		Example: example(`
			lfsm init shop
			cd shop && lfsm run --context '{"arg1": 1}'

			lfsm init billing --module github.com/acme/billing
		`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO, opts.Dir, opts.WorkDir = f.IOStreams, args[0], f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runInit(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Module, "module", "", "module `PATH` of the new project (default example.com/<base name of DIR>)")
	fl.BoolVar(&opts.Force, "force", false, "write into a directory that is not empty")
	fl.BoolVar(&opts.NoDeps, "no-deps", false, "do not require the lfsm module in go.mod (no go command needed)")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runInit(ctx context.Context, opts *InitOptions) error {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return fmt.Errorf("init %s: %w", opts.Dir, err)
	}
	mod := opts.Module
	if mod == "" {
		mod = "example.com/" + strings.ToLower(filepath.Base(dir))
	}
	if err := module.CheckPath(mod); err != nil {
		hint := ""
		if opts.Module == "" {
			hint = "; name one with --module"
		}
		return usageErrorf("invalid module path %q: %v%s", mod, err, hint)
	}
	if !opts.Force {
		ents, err := os.ReadDir(dir)
		switch {
		case err == nil && len(ents) > 0:
			return fmt.Errorf("init %s: directory is not empty (use --force to write into it anyway)", opts.Dir)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("init %s: %w", opts.Dir, err)
		}
	}
	data := struct{ Module, GoVersion, Name string }{mod, goVersion(ctx), filepath.Base(dir)}
	res := InitResult{FormatVersion: "1", Dir: dir, Module: mod, Files: []string{}}
	for _, file := range txtar.Parse(scaffold).Files {
		name := strings.TrimSuffix(file.Name, ".tmpl")
		t, err := template.New(name).Option("missingkey=error").Parse(string(file.Data))
		if err != nil {
			return fmt.Errorf("scaffold %s: %w", name, err) // a bug in the embedded scaffold
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("scaffold %s: %w", name, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		res.Files = append(res.Files, name)
	}
	if !opts.NoDeps {
		if opts.Output != outputJSON {
			fmt.Fprintf(opts.IO.ErrOut, "init: requiring %s in go.mod\n", build.ModulePath)
		}
		if err := requireLFSM(ctx, dir); err != nil {
			return err
		}
	}
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	shown := relTo(opts.WorkDir, dir)
	_, err = fmt.Fprintf(opts.IO.Out, "Created %s (module %s): %s\n\nNext:\n"+
		"  cd %s\n"+
		"  lfsm run --context '{\"arg1\": 1}'   # build (the first time: 1 to 3 minutes), then run\n"+
		"  lfsm test                          # the actions' tests, on any machine (plain go test needs lfsm's module proxy: see README.md)\n",
		shown, mod, strings.Join(res.Files, ", "), shown)
	return err
}

// requireLFSM adds the lfsm module to the project's go.mod, resolved from
// lfsm's own offline module proxy.
func requireLFSM(ctx context.Context, dir string) error {
	version, proxyURL, err := build.EnsureProxy("")
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	env, err := build.Env(ctx, dir, proxyURL)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "get", build.FSMPackage+"@"+version)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("init: go get %s@%s: %w\n%s", build.FSMPackage, version, err, bytes.TrimSpace(out))
	}
	return nil
}

var goVersionRE = regexp.MustCompile(`^go(\d+\.\d+(\.\d+)?)$`)

// goVersion is the go directive of a new module: the version of the go
// command on PATH, else of the toolchain lfsm was built with.
func goVersion(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		if m := goVersionRE.FindStringSubmatch(strings.TrimSpace(string(out))); m != nil {
			return m[1]
		}
	}
	if m := goVersionRE.FindStringSubmatch(runtime.Version()); m != nil {
		return m[1]
	}
	return "1.26"
}
