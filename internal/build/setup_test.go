package build

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testRoot holds everything the tests of this package share; TestMain removes it.
var testRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "lfsm-build-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testRoot = dir
	code := m.Run()
	// The module cache marks files read-only; make them writable to remove them.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
	os.Exit(code)
}

// shop is the shared user project of the tests, laid out once.
type shop struct {
	dir     string   // project root
	cache   string   // module proxy directory
	version string   // lfsm version in the proxy
	env     []string // go env serving lfsm from the proxy
}

var (
	shopOnce sync.Once
	shopVal  shop
	shopErr  error
)

// needGo skips the test when the go command is not installed.
func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH: cannot build user projects")
	}
}

// sharedShop extracts testdata/shop.txtar, lays out the module proxy and
// requires lfsm's fsm package in the project, once per test binary.
func sharedShop(t *testing.T) shop {
	t.Helper()
	needGo(t)
	shopOnce.Do(func() {
		ctx := context.Background()
		s := shop{dir: filepath.Join(testRoot, "shop"), cache: filepath.Join(testRoot, "modproxy")}
		if shopErr = extractTxtar("testdata/shop.txtar", s.dir); shopErr != nil {
			return
		}
		var proxyURL string
		if s.version, proxyURL, shopErr = EnsureProxy(s.cache); shopErr != nil {
			return
		}
		if s.env, shopErr = Env(ctx, s.dir, proxyURL); shopErr != nil {
			return
		}
		_, shopErr = runGo(ctx, s.dir, s.env, "get", FSMPackage+"@"+s.version)
		shopVal = s
	})
	if shopErr != nil {
		t.Fatalf("set up test project: %v", shopErr)
	}
	return shopVal
}

// extractTxtar writes the files of a txtar archive under dir.
func extractTxtar(archive, dir string) error {
	a, err := txtar.ParseFile(archive)
	if err != nil {
		return err
	}
	for _, f := range a.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
