package build

import (
	"archive/zip"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MaxLambdaZip is the size the seed's Example must stay under as a Lambda
// deployment package (docs/benchmarks.md records the figure).
const maxLambdaZip = 8 << 20

// The Lambda artifact: linux/arm64, CGO off, tag lambda.norpc, trimmed and
// stripped, linking neither SQLite nor drawing code, zipped reproducibly
// with bootstrap at the root, mode 0755 and a fixed time; the same sources
// give the same zip, also when rebuilt with Force.
func TestBuildLambda(t *testing.T) {
	p, _ := builtShop(t)
	if _, _, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache}); err != nil {
		t.Fatal(err)
	}
	res, diags, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache, Lambda: true, Logger: testLogger()})
	if err != nil || hasErrors(diags) {
		t.Fatalf("lambda build: %v %v", err, diags)
	}
	if want := filepath.Join(p.dir, ".lfsm", "lambda", "arm64", "bootstrap"); res.Binary != want {
		t.Errorf("binary %s, want %s", res.Binary, want)
	}
	if res.Zip == nil || res.Zip.Path != filepath.Join(p.dir, ".lfsm", "lambda", "shop.zip") {
		t.Fatalf("zip %+v, want .lfsm/lambda/shop.zip", res.Zip)
	}
	if res.Zip.Size > maxLambdaZip {
		t.Errorf("zip is %d bytes, over the %d target", res.Zip.Size, maxLambdaZip)
	}
	out, err := exec.CommandContext(t.Context(), "go", "version", "-m", res.Binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	info := string(out)
	for _, want := range []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "-tags=lambda.norpc", "-trimpath=true",
		"github.com/aws/aws-lambda-go"} {
		if !strings.Contains(info, want) {
			t.Errorf("go version -m lacks %q:\n%s", want, info)
		}
	}
	for _, bad := range []string{"modernc.org/sqlite", "modernc.org/libc", "goccy/go-graphviz", "gographviz", "tetratelabs/wazero", "fogleman/gg"} {
		if strings.Contains(info, bad) {
			t.Errorf("the Lambda binary links %s:\n%s", bad, info)
		}
	}

	// Stripped: no symbol table (go version -m leaves -ldflags out under -trimpath).
	ef, err := elf.Open(res.Binary)
	if err != nil {
		t.Fatal(err)
	}
	if ef.Section(".symtab") != nil {
		t.Error("the Lambda binary has a symbol table: not stripped")
	}
	ef.Close()

	zr, err := zip.OpenReader(res.Zip.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 ||
		!zr.File[0].Modified.Equal(zipTime) {
		for _, f := range zr.File {
			t.Errorf("entry %s mode %v modified %v", f.Name, f.Mode(), f.Modified)
		}
		t.Fatal("want one entry bootstrap, mode 0755, fixed time")
	}
	if fileSum(t, res.Zip.Path) != sha256Hex(t, res.Zip.SHA256) {
		t.Error("reported SHA-256 is not the zip's")
	}

	again, _, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache, Lambda: true, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.UpToDate || again.Zip.SHA256 != res.Zip.SHA256 {
		t.Errorf("forced rebuild: up to date %v, sha256 %s then %s", again.UpToDate, res.Zip.SHA256, again.Zip.SHA256)
	}
	// The local binary's stamp is separate: it is still up to date.
	local, _, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache})
	if err != nil || !local.UpToDate {
		t.Errorf("local build after a Lambda build: up to date %v, %v", local.UpToDate, err)
	}
	t.Logf("zip %d bytes, sha256 %s", res.Zip.Size, res.Zip.SHA256)

	amd, _, err := Build(t.Context(), BuildOptions{Dir: p.dir, CacheDir: p.cache, Lambda: true, GOARCH: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if amd.Binary != filepath.Join(p.dir, ".lfsm", "lambda", "amd64", "bootstrap") {
		t.Errorf("amd64 binary %s", amd.Binary)
	}
	if fi, err := os.Stat(amd.Binary); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("amd64 binary: %v %v", fi, err)
	}
}

func sha256Hex(t *testing.T, s string) [32]byte {
	t.Helper()
	var b [32]byte
	if len(s) != 64 {
		t.Fatalf("sha256 %q", s)
	}
	for i := range 32 {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c-'a') + 10
			default:
				t.Fatalf("sha256 %q", s)
			}
		}
		b[i] = v
	}
	return b
}
