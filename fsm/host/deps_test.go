package host

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// drawing lists the import path prefixes of drawing code: the renderer, the DOT
// library and Graphviz's WebAssembly runtime (whose package init compiled
// Graphviz at every start of every binary that linked it).
var drawing = []string{
	"github.com/lfsm/lfsm/internal/graph",
	"github.com/awalterschulze/gographviz",
	"github.com/goccy/go-graphviz",
	"github.com/tetratelabs/wazero",
	"github.com/fogleman/gg",
	"github.com/golang/freetype",
	"golang.org/x/image",
}

// TestRuntimeLinksNoDrawing checks that the runtime (this package, which every
// generated main calls, and what it runs on: engine, local runtime, backends,
// and the Lambda handler once it exists) links no drawing code.
func TestRuntimeLinksNoDrawing(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	root := filepath.Join("..", "..")
	pkgs := []string{"./fsm/host", "./internal/engine", "./internal/local", "./internal/backend/..."}
	if _, err := os.Stat(filepath.Join(root, "internal", "lambda")); err == nil {
		pkgs = append(pkgs, "./internal/lambda/...")
	}
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", strings.Join(pkgs, " "), err, stderrOf(err))
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, p := range drawing {
			if strings.HasPrefix(dep, p) {
				t.Errorf("the runtime links %s (drawing code: %s)", dep, p)
			}
		}
	}
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
