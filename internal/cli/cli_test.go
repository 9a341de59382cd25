package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
)

// testFactory returns a Factory working in a fresh directory holding the
// given files, with buffer-backed streams.
func testFactory(t *testing.T, files map[string]string) (*Factory, *IOStreams) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ios, _, _, _ := TestIOStreams()
	return &Factory{
		IOStreams: ios,
		WorkDir:   dir,
		BuildInfo: func() (*debug.BuildInfo, bool) { return nil, false },
		Config:    config.Default(),
	}, ios
}

// replaceCmd swaps root's subcommand of the same name for cmd.
func replaceCmd(root, cmd *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() == cmd.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(cmd)
}

func TestSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name     string
		file     string // content of lfsm.yaml; "" means no file
		env      map[string]string
		args     []string
		want     string // the --output the command sees
		wantCfg  config.Config
		wantCode int
	}{
		{name: "default", args: []string{"version"}, want: "text",
			wantCfg: config.Config{File: "fsm.yaml", Target: "local", Output: "text"}},
		{name: "file", file: "output: json\ntarget: aws\nmachine: Orders\n", args: []string{"version"}, want: "json",
			wantCfg: config.Config{File: "fsm.yaml", Target: "aws", Output: "json", Machine: "Orders"}},
		{name: "env beats file", file: "output: text\n", env: map[string]string{"LFSM_OUTPUT": "json"},
			args: []string{"version"}, want: "json",
			wantCfg: config.Config{File: "fsm.yaml", Target: "local", Output: "json"}},
		{name: "flag beats env", env: map[string]string{"LFSM_OUTPUT": "json"},
			args: []string{"version", "--output", "text"}, want: "text",
			wantCfg: config.Config{File: "fsm.yaml", Target: "local", Output: "text"}},
		{name: "flag beats file", file: "output: json\n", args: []string{"version", "--output=text"}, want: "text",
			wantCfg: config.Config{File: "fsm.yaml", Target: "local", Output: "text"}},
		{name: "env sets a persistent flag", env: map[string]string{"LFSM_TARGET": "aws"}, args: []string{"version"},
			want: "text", wantCfg: config.Config{File: "fsm.yaml", Target: "aws", Output: "text"}},
		{name: "key the command lacks", env: map[string]string{"LFSM_LAMBDA_ARN": "arn:aws:lambda:us-east-1:123456789012:function:f"},
			args: []string{"version"}, want: "text",
			wantCfg: config.Config{File: "fsm.yaml", Target: "local", Output: "text",
				LambdaARN: "arn:aws:lambda:us-east-1:123456789012:function:f"}},
		{name: "bad env value", env: map[string]string{"LFSM_OUTPUT": "yaml"}, args: []string{"version"},
			wantCode: ExitUsage},
		{name: "bad target in file", file: "target: gcp\n", args: []string{"version"}, wantCode: ExitUsage},
		{name: "unknown key in file", file: "outptu: json\n", args: []string{"version"}, wantCode: ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"LFSM_OUTPUT", "LFSM_TARGET", "LFSM_CONFIG", "LFSM_LAMBDA_ARN", "LFSM_MACHINE", "LFSM_FILE"} {
				t.Setenv(k, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			files := map[string]string{}
			if tt.file != "" {
				files[config.FileName] = tt.file
			}
			f, _ := testFactory(t, files)
			var got *VersionOptions
			root := NewRootCmd(f)
			replaceCmd(root, newVersionCmd(f, func(o *VersionOptions) error { got = o; return nil }))
			root.SetArgs(tt.args)
			err := root.ExecuteContext(t.Context())
			if code := ExitCode(err); code != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d", code, err, tt.wantCode)
			}
			if tt.wantCode != ExitOK {
				return
			}
			if got == nil {
				t.Fatal("command did not run")
			}
			if got.Output != tt.want {
				t.Errorf("Output = %q, want %q", got.Output, tt.want)
			}
			if diff := cmp.Diff(tt.wantCfg, f.Config); diff != "" {
				t.Errorf("Config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPNGRefusedOnTerminal(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		out      string
		wantErr  bool
	}{
		{name: "terminal stdout", terminal: true, wantErr: true},
		{name: "terminal, dash", terminal: true, out: "-", wantErr: true},
		{name: "pipe", terminal: false},
		{name: "terminal, file", terminal: true, out: "x.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := TestIOStreams()
			ios.OutIsTerminal = tt.terminal
			out := tt.out
			if out != "" && out != "-" {
				out = filepath.Join(t.TempDir(), out)
			}
			// The spec is never read when the destination is refused.
			err := runGraph(t.Context(), &GraphOptions{IO: ios, File: "does-not-exist.yaml", Output: "png", Out: out})
			var ue *UsageError
			if got := errors.As(err, &ue); got != tt.wantErr {
				t.Fatalf("runGraph error = %v, want usage error: %v", err, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(err.Error(), "--out FILE") {
				t.Errorf("error %q does not say to use --out", err)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	err := writeFileAtomic(path, func(w io.Writer) error {
		fmt.Fprintln(w, "half")
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("writeFileAtomic error = %v, want %v", err, errBoom)
	}
	assertDir(t, dir, map[string]string{"out.txt": "old\n"})

	if err := writeFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, "new\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	assertDir(t, dir, map[string]string{"out.txt": "new\n"})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode().Perm(), err)
	}
}

// assertDir checks that dir holds exactly the files in want.
func assertDir(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("directory mismatch (-want +got):\n%s", diff)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"failure", errors.New("x"), ExitFailure},
		{"silent", errSilent, ExitFailure},
		{"usage", usageErrorf("bad flag"), ExitUsage},
		{"wrapped usage", fmt.Errorf("run: %w", usageErrorf("bad flag")), ExitUsage},
		{"interrupted", fmt.Errorf("render: %w", context.Canceled), ExitInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	info := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/lfsm/lfsm", Version: "v0.3.0"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123"},
				{Key: "vcs.time", Value: "2026-11-25T20:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true
	}
	tests := []struct {
		name     string
		override string
		output   string
		want     string
	}{
		{name: "text", output: "text", want: "lfsm v0.3.0 (0123456789ab+dirty) go1.26.8 PLATFORM\n"},
		{name: "ldflags override", override: "v9.9.9", output: "text", want: "lfsm v9.9.9 (0123456789ab+dirty) go1.26.8 PLATFORM\n"},
		{name: "json", output: "json", want: `{
  "format_version": "1",
  "version": "v0.3.0",
  "commit": "0123456789abcdef0123",
  "commit_time": "2026-11-25T20:00:00Z",
  "modified": true,
  "go_version": "go1.26.8",
  "platform": "PLATFORM"
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := version
			version = tt.override
			t.Cleanup(func() { version = old })
			ios, _, out, _ := TestIOStreams()
			if err := runVersion(t.Context(), &VersionOptions{IO: ios, BuildInfo: info, Output: tt.output}); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(out.String(), buildVersion(info).Platform, "PLATFORM")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHelpTeaches(t *testing.T) {
	f, _ := testFactory(t, nil)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Parent() != nil && c.Parent().Name() == "completion" {
			return
		}
		if c.Long == "" {
			t.Errorf("%s has no Long description", c.CommandPath())
		}
		if c.Example == "" && c.Name() != "completion" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(f))
}

func TestHeredoc(t *testing.T) {
	got := heredoc(`
		first
		  indented

		last
	`)
	want := "first\n  indented\n\nlast"
	if got != want {
		t.Errorf("heredoc = %q, want %q", got, want)
	}
}
