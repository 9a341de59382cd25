package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/lfsm/lfsm/internal/spec"
)

// StateDir is the per-project directory lfsm owns (generated code, binaries,
// build stamps, the local database). Build writes a .gitignore into it.
const StateDir = ".lfsm"

// ErrLFSMModule reports a spec that lies in the lfsm module itself (the
// spec-only examples of this repository, such as examples/reference): that
// module is no project, and has no Go actions to build or check. Build and
// Check refuse it before writing anything (no .lfsm directory, no go get).
var ErrLFSMModule = errors.New("the spec lies in the lfsm module itself (" + ModulePath + "), which holds no project and no Go actions for it")

// BuildOptions configure Build.
type BuildOptions struct {
	// Dir is the project root: the directory holding the user's go.mod.
	Dir string
	// SpecPath is the spec to build, relative to Dir unless absolute
	// (default fsm.yaml).
	SpecPath string
	// Out is the binary to write, relative to Dir unless absolute (default
	// .lfsm/bin/<last element of the module path>, or
	// .lfsm/bin/<goos>_<goarch>/<name> for another platform).
	Out string
	// GOOS and GOARCH select the target platform (default: the host's).
	GOOS, GOARCH string
	// CacheDir is the module proxy directory (default DefaultProxyDir()).
	CacheDir string
	// Force rebuilds even when the inputs are unchanged.
	Force bool
	// Lambda builds the AWS Lambda artifact instead of a local binary: for
	// linux (GOOS is ignored) on GOARCH arm64 unless set, with the tag
	// lambda.norpc (which also leaves the local store out of fsm/host),
	// stripped, to .lfsm/lambda/<goarch>/bootstrap unless Out says
	// otherwise, and zipped to .lfsm/lambda/<name>.zip (Result.Zip).
	Lambda bool
	// Logger receives progress lines (nil: discard).
	Logger *slog.Logger
}

// Result describes a build.
type Result struct {
	// Binary is the absolute path of the built executable.
	Binary string `json:"binary"`
	// Module is the user's module path.
	Module string `json:"module"`
	// LFSMVersion is the version of the lfsm module the binary links: the
	// version lfsm publishes in its module proxy, or, when the project's
	// go.mod replaces lfsm, the version go.mod requires.
	LFSMVersion string `json:"lfsm_version"`
	// LFSMReplace is the replacement of the lfsm module in the project's
	// go.mod, as written there (e.g. "../.."); empty when there is none.
	LFSMReplace string `json:"lfsm_replace,omitempty"`
	// GenDir is the absolute path of the generated main package.
	GenDir string `json:"gen_dir"`
	// UpToDate is true when nothing changed since the last build and the
	// binary was kept as it was.
	UpToDate bool `json:"up_to_date"`
	// InputHash identifies the inputs (what the stamp file records).
	InputHash string        `json:"input_hash"`
	Duration  time.Duration `json:"duration_ns"`
	// Zip is the Lambda deployment package (BuildOptions.Lambda only).
	Zip *Zip `json:"zip,omitempty"`
}

// Build loads the spec, checks its action references, generates the main
// package, makes the lfsm module available offline (EnsureProxy), requires it
// in the user's go.mod and builds the binary with -trimpath -buildvcs=false and
// CGO_ENABLED=0, so the same inputs give the same bytes. When the user's go.mod
// already replaces the lfsm module (a checkout of lfsm, a fork), Build uses it
// as it is: no proxy, no go get, and go commands run with -mod=readonly so
// that go.mod and go.sum are left exactly as they were. Problems in what the
// user wrote are returned as diagnostics (with a nil error); err is for
// everything else. When the hash of the inputs (spec files, go.mod, go.sum,
// the module's .go files, lfsm version, Go version, platform) matches the
// stamp of the last build and the binary exists, Build returns at once.
func Build(ctx context.Context, opts BuildOptions) (Result, spec.Diagnostics, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return res, nil, fmt.Errorf("project directory: %w", err)
	}
	um, err := readGoMod(dir)
	if err != nil {
		return res, nil, err
	}
	modPath := um.path
	res.Module = modPath
	if modPath == ModulePath {
		return res, nil, ErrLFSMModule
	}
	res.LFSMReplace = um.replace
	goos, goarch := cmpOr(opts.GOOS, runtime.GOOS), cmpOr(opts.GOARCH, runtime.GOARCH)
	if opts.Lambda {
		goos, goarch = "linux", cmpOr(opts.GOARCH, "arm64")
	}
	out := opts.Out
	switch {
	case out == "" && opts.Lambda:
		out = filepath.Join(StateDir, "lambda", goarch, "bootstrap")
	case out == "":
		name := pathBase(modPath)
		out = filepath.Join(StateDir, "bin", name)
		if goos != runtime.GOOS || goarch != runtime.GOARCH {
			out = filepath.Join(StateDir, "bin", goos+"_"+goarch, name)
		}
	}
	if goos == "windows" && !strings.HasSuffix(out, ".exe") {
		out += ".exe"
	}
	res.Binary = absIn(dir, out)
	res.GenDir = filepath.Join(dir, filepath.FromSlash(GenDir))
	specPath := absIn(dir, cmpOr(opts.SpecPath, "fsm.yaml"))

	s, diags := spec.Load(specPath)
	if s != nil && !hasErrors(diags) {
		// Action references are checked below, with their Go types.
		diags = append(diags, spec.Validate(s, spec.ValidateOptions{})...)
	}
	if hasErrors(diags) || s == nil {
		return res, diags, nil
	}
	version, err := Version()
	if err != nil {
		return res, diags, err
	}
	res.LFSMVersion = version
	user, err := userGoEnv(ctx, dir)
	if err != nil {
		return res, diags, err
	}
	platform := goos + "_" + goarch
	buildFlags := []string{"-trimpath", "-buildvcs=false"}
	if opts.Lambda {
		platform += "_lambda"
		buildFlags = append(buildFlags, "-tags", LambdaTags, "-ldflags", "-s -w")
	}
	stampPath := filepath.Join(dir, StateDir, "stamps", platform+".stamp")
	hashInputs := func() (string, error) {
		return inputHash(dir, s.Files, version, user, platform, strings.Join(buildFlags, " "), res.Binary, um.replaceDir)
	}
	zipPath := filepath.Join(dir, StateDir, "lambda", pathBase(modPath)+".zip")
	finish := func() (Result, spec.Diagnostics, error) {
		if opts.Lambda {
			z, err := WriteZip(res.Binary, zipPath)
			if err != nil {
				return res, diags, err
			}
			res.Zip = &z
		}
		res.Duration = time.Since(start)
		return res, diags, nil
	}
	h, err := hashInputs()
	if err != nil {
		return res, diags, err
	}
	res.InputHash = h
	if !opts.Force && upToDate(stampPath, h, res.Binary) {
		// The caller reports the result (lfsm build: "up to date: ..."):
		// at info level this would say it twice.
		log.Debug("build up to date", "binary", rel(dir, res.Binary))
		res.UpToDate = true
		return finish()
	}

	var env []string
	if um.replace != "" {
		// The user's go.mod says where lfsm comes from: leave it, and go.sum, alone.
		log.Info("using the replace in go.mod", "module", ModulePath, "replace", um.replace)
		res.LFSMVersion = um.lfsmVersion
		env = mergeEnv(os.Environ(), user, "")
	} else {
		log.Info("preparing lfsm module", "version", version)
		var proxyURL string
		version, proxyURL, err = EnsureProxy(opts.CacheDir)
		if err != nil {
			return res, diags, err
		}
		env = mergeEnv(os.Environ(), user, proxyURL)
	}
	if err := writeStateDir(dir); err != nil {
		return res, diags, err
	}
	if um.replace == "" {
		log.Info("requiring lfsm in go.mod (the first build downloads what it needs)", "module", ModulePath, "version", version)
		if err := requireVersion(ctx, dir, env, um, version); err != nil {
			return res, diags, fmt.Errorf("require %s in %s: %w", ModulePath, modPath, err)
		}
		if _, err := runGoLog(ctx, log, dir, env, "get", HostPackage+"@"+version); err != nil {
			return res, diags, fmt.Errorf("require %s in %s: %w", ModulePath, modPath, err)
		}
	}

	log.Info("checking actions", "spec", rel(dir, specPath))
	refs, adiags := checkActions(ctx, dir, env, s)
	diags = append(diags, adiags...)
	if hasErrors(adiags) {
		return res, diags, nil
	}

	log.Info("generating main package", "dir", GenDir)
	src, err := Generate(relativize(s, dir), ModuleInfo{Path: modPath, Refs: refs})
	if err != nil {
		return res, diags, err
	}
	if err := os.MkdirAll(res.GenDir, 0o755); err != nil {
		return res, diags, fmt.Errorf("generate: %w", err)
	}
	if err := writeIfChanged(filepath.Join(res.GenDir, "main.go"), src); err != nil {
		return res, diags, fmt.Errorf("generate: %w", err)
	}

	log.Info("compiling (the first build compiles lfsm's dependencies too: about a minute)", "goos", goos, "goarch", goarch, "out", rel(dir, res.Binary))
	benv := append(slices.Clip(env), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if err := os.MkdirAll(filepath.Dir(res.Binary), 0o755); err != nil {
		return res, diags, fmt.Errorf("build: %w", err)
	}
	args := append(append([]string{"build"}, buildFlags...), "-o", res.Binary, "./"+GenDir)
	if _, err := runGoLog(ctx, log, dir, benv, args...); err != nil {
		if um.replace != "" {
			return res, diags, fmt.Errorf("build %s (go.mod replaces %s, so lfsm leaves go.mod and go.sum as they are: if go asks for changes, run go mod tidy there): %w", modPath, ModulePath, err)
		}
		return res, diags, fmt.Errorf("build %s: %w", modPath, err)
	}
	// go get may have changed go.mod and go.sum: stamp what the next run sees.
	if h, err = hashInputs(); err != nil {
		return res, diags, err
	}
	res.InputHash = h
	if err := os.MkdirAll(filepath.Dir(stampPath), 0o755); err != nil {
		return res, diags, fmt.Errorf("write build stamp: %w", err)
	}
	if err := writeAtomic(stampPath, []byte(h+"\n")); err != nil {
		return res, diags, fmt.Errorf("write build stamp: %w", err)
	}
	res, diags, err = finish()
	if err == nil {
		// The caller reports the result (lfsm build: "built ...").
		log.Debug("built", "binary", rel(dir, res.Binary), "duration", res.Duration.Round(time.Millisecond))
	}
	return res, diags, err
}

// requireVersion points go.mod's requirement of lfsm at version without
// resolving anything, when it requires another: go get would first load the
// version go.mod names, which a proxy of another lfsm binary served and this
// machine may never have seen (a CI runner with a newer lfsm).
func requireVersion(ctx context.Context, dir string, env []string, um goMod, version string) error {
	if um.lfsmVersion == "" || um.lfsmVersion == version {
		return nil
	}
	_, err := runGo(ctx, dir, env, "mod", "edit", "-require="+ModulePath+"@"+version)
	return err
}

// FindModuleRoot returns the nearest directory at or above dir that holds a
// go.mod file, or "" when there is none.
func FindModuleRoot(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// goMod is what Build needs of the project's go.mod.
type goMod struct {
	path string
	// replace is the replacement of the lfsm module as go.mod writes it: a
	// directory, or "path version"; empty when go.mod does not replace lfsm.
	replace string
	// replaceDir is the replacement directory, absolute, when it is one.
	replaceDir string
	// lfsmVersion is the version of lfsm go.mod requires, if any.
	lfsmVersion string
}

// readGoMod reads dir/go.mod.
func readGoMod(dir string) (goMod, error) {
	p := filepath.Join(dir, "go.mod")
	b, err := os.ReadFile(p)
	if err != nil {
		return goMod{}, fmt.Errorf("read go.mod (the project directory must be a Go module root): %w", err)
	}
	f, err := modfile.Parse(p, b, nil)
	if err != nil {
		return goMod{}, fmt.Errorf("read go.mod: %w", err)
	}
	if f.Module == nil || f.Module.Mod.Path == "" {
		return goMod{}, fmt.Errorf("%s: no module directive", p)
	}
	m := goMod{path: f.Module.Mod.Path}
	for _, r := range f.Require {
		if r.Mod.Path == ModulePath {
			m.lfsmVersion = r.Mod.Version
		}
	}
	for _, r := range f.Replace {
		if r.Old.Path != ModulePath || (r.Old.Version != "" && r.Old.Version != m.lfsmVersion) {
			continue
		}
		if r.New.Version == "" { // a directory
			m.replace, m.replaceDir = r.New.Path, absIn(dir, filepath.FromSlash(r.New.Path))
		} else {
			m.replace, m.replaceDir = r.New.Path+" "+r.New.Version, ""
		}
	}
	return m, nil
}

// writeStateDir creates .lfsm with a .gitignore that ignores all of it.
func writeStateDir(dir string) error {
	sd := filepath.Join(dir, StateDir)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", StateDir, err)
	}
	return writeIfChanged(filepath.Join(sd, ".gitignore"), []byte("# Written by lfsm: generated code, binaries and local state.\n*\n"))
}

// inputHash hashes everything a build depends on. replaceDir, when not
// empty, is the directory go.mod replaces lfsm with: its Go files are inputs
// too.
func inputHash(dir string, specFiles []string, version string, user goSettings, platform, flags, out, replaceDir string) (string, error) {
	h := sha256.New()
	meta, _ := json.Marshal([]string{"lfsm-build-1", version, user.GOVERSION, user.GOFLAGS, platform, flags, out})
	h.Write(meta)
	add := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00", filepath.ToSlash(rel(dir, p)), len(b))
		h.Write(b)
		return nil
	}
	var files []string
	for _, f := range specFiles {
		files = append(files, absIn(dir, f))
	}
	files = append(files, filepath.Join(dir, "go.mod"))
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
		files = append(files, filepath.Join(dir, "go.sum"))
	}
	roots := []string{dir}
	if replaceDir != "" {
		roots = append(roots, replaceDir)
	}
	for _, root := range roots {
		src, err := moduleSources(root)
		if err != nil {
			return "", fmt.Errorf("hash build inputs: %w", err)
		}
		files = append(files, src...)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		if err := add(f); err != nil {
			return "", fmt.Errorf("hash build inputs: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moduleSources lists the .go, .s and .c files of the module rooted at root,
// outside dot, underscore and testdata directories and nested modules.
func moduleSources(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			if p != root {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".s") || strings.HasSuffix(p, ".c") {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// upToDate reports whether the stamp records hash and the binary exists.
func upToDate(stamp, hash, binary string) bool {
	b, err := os.ReadFile(stamp)
	if err != nil || strings.TrimSpace(string(b)) != hash {
		return false
	}
	fi, err := os.Stat(binary)
	return err == nil && fi.Mode().IsRegular()
}

// relativize returns a copy of s whose file names are relative to dir (with
// forward slashes), so that the compiled-in spec holds no machine-specific
// path and builds are reproducible across checkouts.
func relativize(s *spec.Spec, dir string) *spec.Spec {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("build: spec does not encode: %v", err)) // spec.Spec round-trips by contract
	}
	var c spec.Spec
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("build: spec does not decode: %v", err))
	}
	fix := func(p string) string {
		if p == "" {
			return p
		}
		return filepath.ToSlash(rel(dir, absIn(dir, p)))
	}
	c.Root = fix(c.Root)
	for i := range c.Files {
		c.Files[i] = fix(c.Files[i])
	}
	rangeType := reflect.TypeFor[spec.Range]()
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			// Map values are not addressable; the model keeps ranges in structs.
		case reflect.Struct:
			if v.Type() == rangeType {
				f := v.FieldByName("Filename")
				if f.CanSet() {
					f.SetString(fix(f.String()))
				}
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		}
	}
	walk(reflect.ValueOf(&c))
	return &c
}

func hasErrors(d spec.Diagnostics) bool {
	return slices.ContainsFunc(d, func(x spec.Diagnostic) bool { return x.Severity == spec.SeverityError })
}

func writeIfChanged(p string, b []byte) error {
	if old, err := os.ReadFile(p); err == nil && string(old) == string(b) {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeAtomic(p, b)
}

// absIn resolves p against dir unless it is absolute.
func absIn(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// rel is p relative to dir when that is possible, else p.
func rel(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil {
		return r
	}
	return p
}

// pathBase is the last element of a module path, skipping a major version
// suffix (example.com/shop/v2 -> shop).
func pathBase(modPath string) string {
	base := path.Base(modPath)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		base = path.Base(path.Dir(modPath))
	}
	return base
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
