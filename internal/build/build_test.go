package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/modfile"
)

var (
	builtOnce sync.Once
	builtRes  Result
	builtErr  error
)

// builtShop builds the shared project once per test binary.
func builtShop(t *testing.T) (shop, Result) {
	t.Helper()
	p := sharedShop(t)
	builtOnce.Do(func() {
		res, diags, err := Build(context.Background(), BuildOptions{Dir: p.dir, CacheDir: p.cache, Logger: testLogger()})
		if err == nil && hasErrors(diags) {
			err = errors.New("diagnostics:\n" + renderDiags(p.dir, diags))
		}
		builtRes, builtErr = res, err
	})
	if builtErr != nil {
		t.Fatalf("build test project: %v", builtErr)
	}
	return p, builtRes
}

func TestBuildRunsSeedExample(t *testing.T) {
	p, res := builtShop(t)
	if want := filepath.Join(p.dir, ".lfsm", "bin", "shop"); res.Binary != want {
		t.Errorf("binary %s, want %s", res.Binary, want)
	}
	tests := []struct {
		name    string
		context string
		code    int
		lambdas []string
		summary string
	}{
		{"done done", `{"arg1":1}`, 0, []string{"λ1", "λ2", "λ4", "λ5"}, ": done in "},
		{"arg1 missing", `{}`, 1, []string{"λ1"}, ": failed at λ1 (pseudo_init -> FirstState): FirstState.do_action: arg1 missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "lfsm.db")
			cmd := exec.CommandContext(t.Context(), res.Binary, "run", "-m", "Example", "--context", tt.context, "--db", db)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, &stdout, &stderr)
			}
			out := stdout.String()
			got := regexp.MustCompile(`(?m)^λ\d+`).FindAllString(out, -1)
			if strings.Join(got, " ") != strings.Join(tt.lambdas, " ") {
				t.Errorf("λs %v, want %v\n%s", got, tt.lambdas, out)
			}
			if !strings.Contains(out, tt.summary) {
				t.Errorf("output lacks %q:\n%s", tt.summary, out)
			}
		})
	}
	// The seed's listing: which actions run in λ2.
	if gm, err := os.ReadFile(filepath.Join(res.GenDir, "main.go")); err != nil || !bytes.Contains(gm, []byte("&actions.Action4{}")) {
		t.Errorf("generated main.go (err %v) lacks the pointer form of Action4", err)
	}
	if b, err := os.ReadFile(filepath.Join(p.dir, ".lfsm", ".gitignore")); err != nil || !strings.Contains(string(b), "*") {
		t.Errorf(".lfsm/.gitignore: %q, %v", b, err)
	}
	gomod, err := os.ReadFile(filepath.Join(p.dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Replace) > 0 {
		t.Errorf("go.mod has replace directives:\n%s", gomod)
	}
	found := false
	for _, r := range f.Require {
		found = found || (r.Mod.Path == ModulePath && r.Mod.Version == res.LFSMVersion)
	}
	if !found {
		t.Errorf("go.mod does not require %s %s:\n%s", ModulePath, res.LFSMVersion, gomod)
	}
}

func TestBuildReproducibleAndStamped(t *testing.T) {
	p, first := builtShop(t)
	again, diags, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache})
	if err != nil || hasErrors(diags) {
		t.Fatalf("rebuild: %v %v", err, diags)
	}
	if !again.UpToDate || again.InputHash != first.InputHash {
		t.Errorf("unchanged project rebuilt: up to date %v, hash %s then %s", again.UpToDate, first.InputHash, again.InputHash)
	}
	out2 := filepath.Join(t.TempDir(), "shop2")
	second, diags, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache, Out: out2, Force: true})
	if err != nil || hasErrors(diags) {
		t.Fatalf("second build: %v %v", err, diags)
	}
	if second.UpToDate {
		t.Error("forced build reported up to date")
	}
	if a, b := fileSum(t, first.Binary), fileSum(t, second.Binary); a != b {
		t.Errorf("same sources, different binaries: %x vs %x", a, b)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// testLogger shows Build's progress with -v.
func testLogger() *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

func TestBuildReportsBadReferences(t *testing.T) {
	p, _ := builtShop(t)
	out := filepath.Join(t.TempDir(), "bad")
	_, diags, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache, SpecPath: "fsm-bad.yaml", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, d := range diags {
		codes[d.Code] = true
	}
	for _, want := range []string{CodeUnknownPackage, CodeUnknownSymbol, CodeWrongActionType, "not-go-symbol"} {
		if !codes[want] {
			t.Errorf("no %s diagnostic in:\n%s", want, renderDiags(p.dir, diags))
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a binary was written despite errors")
	}
}

// TestBuildKeepsUserReplace builds a copy of examples/seed, whose go.mod
// replaces lfsm with this repository: Build must use that replace as it is,
// with no module proxy and no network (GOPROXY=off: the committed go.sum is
// complete), and leave go.mod and go.sum byte for byte as they were.
func TestBuildKeepsUserReplace(t *testing.T) {
	needGo(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(repo, "examples", "seed")
	gomod, err := os.ReadFile(filepath.Join(seed, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The committed replace is relative, so that it works in any checkout.
	if len(f.Replace) != 1 || f.Replace[0].Old.Path != ModulePath || f.Replace[0].New.Path != "../.." {
		t.Fatalf("examples/seed/go.mod: want exactly replace %s => ../..:\n%s", ModulePath, gomod)
	}

	dir := t.TempDir()
	for _, name := range []string{"fsm.yaml", "go.sum", "tools.go", "actions/actions.go", "actions/fancy.go"} {
		b, err := os.ReadFile(filepath.Join(seed, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The copy lives elsewhere: point its replace at the repository.
	if err := f.AddReplace(ModulePath, "", repo, ""); err != nil {
		t.Fatal(err)
	}
	gomod, err = f.Format()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), gomod, 0o644); err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("GOPROXY", "off")
	cache := filepath.Join(t.TempDir(), "modproxy")
	res, diags, err := Build(t.Context(), BuildOptions{Dir: dir, CacheDir: cache, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if hasErrors(diags) {
		t.Fatalf("diagnostics:\n%s", renderDiags(dir, diags))
	}
	if res.LFSMReplace != repo {
		t.Errorf("LFSMReplace %q, want %q", res.LFSMReplace, repo)
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the module proxy was laid out (%v); a replaced lfsm needs none", err)
	}
	for name, want := range map[string][]byte{"go.mod": gomod, "go.sum": gosum} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("build changed %s (err %v):\n%s", name, err, got)
		}
	}

	out, err := exec.CommandContext(t.Context(), res.Binary, "run", "-m", "Example",
		"--context", `{"arg1": 1}`, "--db", filepath.Join(t.TempDir(), "lfsm.db"), "--output", "json").Output()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []string{`"status": "done"`, `"mff": "fancy(1)"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run output lacks %s:\n%s", want, out)
		}
	}
}
