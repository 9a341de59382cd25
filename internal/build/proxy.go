package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/lfsm/lfsm"
)

// ModulePath is the module path user projects require.
const ModulePath = lfsm.ModulePath

// CacheDirEnv names the environment variable that overrides lfsm's cache
// directory (default: os.UserCacheDir()/lfsm).
const CacheDirEnv = "LFSM_CACHE_DIR"

// DefaultCacheDir returns the directory lfsm keeps its caches in:
// $LFSM_CACHE_DIR if set, else <user cache dir>/lfsm.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory: %w (set %s)", err, CacheDirEnv)
	}
	return filepath.Join(d, "lfsm"), nil
}

// DefaultProxyDir is DefaultCacheDir()/modproxy, where EnsureProxy lays out
// the module when given no directory.
func DefaultProxyDir() (string, error) {
	d, err := DefaultCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "modproxy"), nil
}

// sourceFile is one file of the embedded module.
type sourceFile struct {
	path string // slash-separated, relative to the module root
	data []byte
}

var (
	sourceOnce    sync.Once
	sourceFiles   []sourceFile
	sourceVersion string
	sourceErr     error
)

// keepInZip reports whether a file of the embedded tree belongs in the module
// zip: tests, testdata and fuzz corpora are left out.
func keepInZip(p string) bool {
	if strings.HasSuffix(p, "_test.go") {
		return false
	}
	for _, elem := range strings.Split(path.Dir(p), "/") {
		if elem == "testdata" {
			return false
		}
	}
	return true
}

// embeddedSource reads the embedded module once and derives its version.
func embeddedSource() ([]sourceFile, string, error) {
	sourceOnce.Do(func() {
		sourceFiles, sourceVersion, sourceErr = readSource(lfsm.Source)
	})
	return sourceFiles, sourceVersion, sourceErr
}

// readSource collects the files of fsys that go in the zip, sorted by path,
// and returns a pseudo-version derived from a hash of their paths and bytes.
func readSource(fsys fs.FS) ([]sourceFile, string, error) {
	var files []sourceFile
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !keepInZip(p) {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, sourceFile{path: p, data: b})
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read embedded lfsm source: %w", err)
	}
	slices.SortFunc(files, func(a, b sourceFile) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.path, len(f.data))
		h.Write(f.data)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// A pseudo-version whose revision is a content hash: the same lfsm binary
	// always names its module the same, a changed one gets a new version, and
	// it sorts below any real release.
	return files, "v0.0.0-00010101000000-" + sum[:12], nil
}

// Version is the version under which EnsureProxy publishes the embedded lfsm
// module.
func Version() (string, error) {
	_, v, err := embeddedSource()
	return v, err
}

// ProxyURL turns a proxy directory into a GOPROXY entry (file://...).
func ProxyURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// EnsureProxy lays out the embedded lfsm module as a file-based Go module proxy
// under cacheDir (DefaultProxyDir when empty), once per version, and returns
// the version and the GOPROXY entry that serves it. Concurrent callers are safe:
// every file is written to a temporary name and renamed into place.
func EnsureProxy(cacheDir string) (version, proxyURL string, err error) {
	files, version, err := embeddedSource()
	if err != nil {
		return "", "", err
	}
	if cacheDir == "" {
		if cacheDir, err = DefaultProxyDir(); err != nil {
			return "", "", err
		}
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return "", "", fmt.Errorf("module proxy directory: %w", err)
	}
	if err := writeProxy(cacheDir, files, version); err != nil {
		return "", "", fmt.Errorf("lay out module proxy in %s: %w", cacheDir, err)
	}
	return version, ProxyURL(cacheDir), nil
}

func writeProxy(dir string, files []sourceFile, version string) error {
	esc, err := module.EscapePath(ModulePath)
	if err != nil {
		return err
	}
	vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
	info := filepath.Join(vdir, version+".info")
	if _, err := os.Stat(info); err == nil {
		// The .info file is written last: its presence means the rest is there.
		return ensureListed(vdir, version)
	}
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	var gomod []byte
	for _, f := range files {
		if f.path == "go.mod" {
			gomod = f.data
		}
	}
	if gomod == nil {
		return errors.New("embedded source has no go.mod")
	}
	var zbuf bytes.Buffer
	zfiles := make([]modzip.File, len(files))
	for i, f := range files {
		zfiles[i] = memFile{f}
	}
	if err := modzip.Create(&zbuf, module.Version{Path: ModulePath, Version: version}, zfiles); err != nil {
		return fmt.Errorf("create module zip: %w", err)
	}
	if err := writeAtomic(filepath.Join(vdir, version+".zip"), zbuf.Bytes()); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(vdir, version+".mod"), gomod); err != nil {
		return err
	}
	ib, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		return err
	}
	if err := writeAtomic(info, ib); err != nil {
		return err
	}
	return ensureListed(vdir, version)
}

// ensureListed adds version to the proxy's list file if it is not there.
func ensureListed(vdir, version string) error {
	p := filepath.Join(vdir, "list")
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	lines := strings.Fields(string(b))
	if slices.Contains(lines, version) {
		return nil
	}
	lines = append(lines, version)
	slices.Sort(lines)
	return writeAtomic(p, []byte(strings.Join(lines, "\n")+"\n"))
}

// writeAtomic writes b to p through a temporary file in the same directory.
func writeAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp)
		return errors.Join(werr, cerr)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// memFile adapts a sourceFile to golang.org/x/mod/zip.File.
type memFile struct{ f sourceFile }

func (m memFile) Path() string                 { return m.f.path }
func (m memFile) Lstat() (os.FileInfo, error)  { return memInfo(m), nil }
func (m memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m.f.data)), nil }

// memInfo is the fs.FileInfo of a memFile: a read-only regular file.
type memInfo memFile

func (m memInfo) Name() string       { return path.Base(m.f.path) }
func (m memInfo) Size() int64        { return int64(len(m.f.data)) }
func (m memInfo) Mode() fs.FileMode  { return 0o444 }
func (m memInfo) ModTime() time.Time { return time.Time{} }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }
