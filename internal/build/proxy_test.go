package build

import (
	"archive/zip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestEnsureProxy(t *testing.T) {
	dir := t.TempDir()
	v1, url1, err := EnsureProxy(dir)
	if err != nil {
		t.Fatal(err)
	}
	v2, url2, err := EnsureProxy(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v2 || url1 != url2 {
		t.Errorf("second EnsureProxy = %s %s, first %s %s", v2, url2, v1, url1)
	}
	if !regexp.MustCompile(`^v0\.0\.0-00010101000000-[0-9a-f]{12}$`).MatchString(v1) {
		t.Errorf("version %q is not a pseudo-version", v1)
	}
	if want := "file://" + filepath.ToSlash(dir); url1 != want {
		t.Errorf("proxy URL = %q, want %q", url1, want)
	}
	vdir := filepath.Join(dir, "github.com", "lfsm", "lfsm", "@v")
	list, err := os.ReadFile(filepath.Join(vdir, "list"))
	if err != nil {
		t.Fatal(err)
	}
	if string(list) != v1+"\n" {
		t.Errorf("list = %q, want %q", list, v1+"\n")
	}
	for _, ext := range []string{".info", ".mod", ".zip"} {
		if _, err := os.Stat(filepath.Join(vdir, v1+ext)); err != nil {
			t.Error(err)
		}
	}
	zr, err := zip.OpenReader(filepath.Join(vdir, v1+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	prefix := "github.com/lfsm/lfsm@" + v1 + "/"
	names := map[string]bool{}
	for _, f := range zr.File {
		name, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			t.Fatalf("zip entry %q lacks prefix %q", f.Name, prefix)
		}
		names[name] = true
		if strings.HasSuffix(name, "_test.go") || strings.Contains("/"+name, "/testdata/") {
			t.Errorf("zip holds %s", name)
		}
	}
	for _, want := range []string{"go.mod", "go.sum", "embed.go", "fsm/fsm.go", "internal/build/proxy.go"} {
		if !names[want] {
			t.Errorf("zip lacks %s", want)
		}
	}
}

func TestReadSourceVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"go.mod":                  {Data: []byte("module github.com/lfsm/lfsm\n")},
		"fsm/fsm.go":              {Data: []byte("package fsm\n")},
		"fsm/fsm_test.go":         {Data: []byte("package fsm\n")},
		"fsm/testdata/corpus/x":   {Data: []byte("x")},
		"internal/a/testdata/b.y": {Data: []byte("y")},
	}
	files, v1, err := readSource(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.path)
	}
	if d := cmp.Diff([]string{"fsm/fsm.go", "go.mod"}, got); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	// Tests and testdata do not change the version; sources do.
	fsys["fsm/fsm_test.go"] = &fstest.MapFile{Data: []byte("package fsm // changed\n")}
	if _, v, _ := readSource(fsys); v != v1 {
		t.Errorf("version changed with a test file: %s -> %s", v1, v)
	}
	fsys["fsm/fsm.go"] = &fstest.MapFile{Data: []byte("package fsm // changed\n")}
	if _, v, _ := readSource(fsys); v == v1 {
		t.Errorf("version %s did not change with the source", v)
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"HOME=/h", "GOPROXY=old", "GOFLAGS=-x", "PATH=/bin"}
	u := goSettings{GOPROXY: "https://proxy.golang.org,direct", GONOSUMDB: "corp.example", GOFLAGS: "-mod=vendor -tags=x"}
	tests := []struct {
		name     string
		proxyURL string
		want     []string
	}{
		{"lfsm from the proxy", "file:///c/modproxy", []string{
			"HOME=/h", "PATH=/bin",
			"GOFLAGS=-tags=x -mod=mod -trimpath -buildvcs=false",
			"GONOSUMDB=github.com/lfsm/lfsm,corp.example",
			"GOPROXY=file:///c/modproxy,https://proxy.golang.org,direct",
			"GOWORK=off",
		}},
		// go.mod replaces lfsm: the user's proxy settings, and go.mod and
		// go.sum read-only.
		{"lfsm replaced", "", []string{
			"HOME=/h", "PATH=/bin",
			"GOFLAGS=-tags=x -mod=readonly -trimpath -buildvcs=false",
			"GONOSUMDB=corp.example",
			"GOPROXY=https://proxy.golang.org,direct",
			"GOWORK=off",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeEnv(base, u, tt.proxyURL)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("mergeEnv (-want +got):\n%s", d)
			}
		})
	}
}
