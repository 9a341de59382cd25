package build

import (
	"cmp"
	"context"
	"fmt"
	"go/token"
	"go/types"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/tools/go/packages"

	"github.com/lfsm/lfsm/internal/spec"
)

// FSMPackage is the import path of the public action API.
const FSMPackage = ModulePath + "/fsm"

// RefKind says how a Go action reference becomes an fsm.Action value in the
// generated main package.
type RefKind int

// Reference kinds, decided by type-checking the referenced package.
const (
	// RefValue: a type whose value implements fsm.Action; emitted as pkg.T{}.
	RefValue RefKind = iota + 1
	// RefPointer: a type whose pointer implements fsm.Action; emitted as &pkg.T{}.
	RefPointer
	// RefFunc: a function (or a variable of function type) with the action
	// signature; emitted as fsm.ActionFunc(pkg.F).
	RefFunc
	// RefVar: a package-level variable holding an fsm.Action; emitted as pkg.V.
	RefVar
	// RefVarPointer: a package-level variable whose address implements
	// fsm.Action; emitted as &pkg.V.
	RefVarPointer
)

// String names the kind.
func (k RefKind) String() string {
	switch k {
	case RefValue:
		return "value"
	case RefPointer:
		return "pointer"
	case RefFunc:
		return "func"
	case RefVar:
		return "var"
	case RefVarPointer:
		return "var-pointer"
	}
	return fmt.Sprintf("RefKind(%d)", int(k))
}

// Diagnostic codes reported by CheckActions (besides spec.CodeNotGoSymbol).
const (
	CodeUnknownPackage   = "unknown-action-package"
	CodePackageError     = "action-package-error"
	CodeUnknownSymbol    = "unknown-action-symbol"
	CodeUnexportedSymbol = "unexported-action-symbol"
	CodeWrongActionType  = "wrong-action-type"
)

// actionSignature is how the expected function signature is written in messages.
const actionSignature = "func(ctx context.Context, c *fsm.Context) (string, error)"

// refUse is one place an action reference is written.
type refUse struct {
	ref string
	rng spec.Range
}

// ActionRefs returns every action reference of s with where it is written, in
// spec order (machines, states, entry/do/exit, then transitions).
func actionRefs(s *spec.Spec) []refUse {
	var uses []refUse
	add := func(a *spec.ActionRef) {
		if a != nil && a.Ref != "" {
			uses = append(uses, refUse{a.Ref, a.Range})
		}
	}
	for _, m := range s.Machines {
		for _, st := range m.States {
			add(st.EntryAction)
			add(st.DoAction)
			add(st.ExitAction)
			for _, t := range st.Transitions {
				add(t.Action)
			}
		}
	}
	return uses
}

// splitGoRef splits "import/path.Identifier" as spec.ParseGoRef does, but
// also accepts an unexported identifier, so that CheckActions can say "not
// exported" rather than "not a Go symbol".
func splitGoRef(ref string) (pkgPath, ident string, ok bool) {
	if p, id, ok := spec.ParseGoRef(ref); ok {
		return p, id, true
	}
	dot := strings.LastIndexByte(ref, '.')
	if dot < 0 || !token.IsIdentifier(ref[dot+1:]) {
		return "", "", false
	}
	if p, _, ok := spec.ParseGoRef(ref[:dot] + ".X"); ok {
		return p, ref[dot+1:], true
	}
	return "", "", false
}

// CheckActions type-checks every action reference of s against the Go module
// that contains dir, and reports how each resolvable reference becomes an
// fsm.Action. Problems are diagnostics at the reference's range: not a Go
// symbol, unknown package, package that does not compile, unknown symbol,
// unexported symbol, and a symbol of the wrong type. refs holds only
// references without problems.
//
// The go command runs with the process environment; Build passes the
// environment that serves lfsm from its module proxy (see Env).
func CheckActions(ctx context.Context, dir string, s *spec.Spec) (refs map[string]RefKind, diags spec.Diagnostics) {
	return checkActions(ctx, dir, nil, s)
}

func checkActions(ctx context.Context, dir string, env []string, s *spec.Spec) (map[string]RefKind, spec.Diagnostics) {
	refs := map[string]RefKind{}
	var diags spec.Diagnostics
	uses := actionRefs(s)

	type target struct{ pkg, ident string }
	targets := map[string]target{}
	var pkgPaths []string
	for _, u := range uses {
		p, id, ok := splitGoRef(u.ref)
		if !ok {
			continue
		}
		targets[u.ref] = target{p, id}
		if !slices.Contains(pkgPaths, p) {
			pkgPaths = append(pkgPaths, p)
		}
	}
	slices.Sort(pkgPaths)

	loaded := map[string]*packages.Package{}
	var loadErr error
	if len(pkgPaths) > 0 {
		cfg := &packages.Config{
			Context: ctx,
			Dir:     dir,
			Env:     env,
			Mode:    packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		}
		pkgs, err := packages.Load(cfg, pkgPaths...)
		if err != nil {
			loadErr = err
		}
		for _, p := range pkgs {
			loaded[p.PkgPath] = p
		}
	}

	// Decide each distinct reference once, then report at every use.
	verdicts := map[string]verdict{}
	decide := func(ref string) verdict {
		t, ok := targets[ref]
		if !ok {
			return verdict{code: spec.CodeNotGoSymbol,
				summary: fmt.Sprintf("action %q is not a Go symbol reference", ref),
				hint:    `write Go actions as import/path.Identifier, e.g. "example.com/shop/actions.ChargeCard"`}
		}
		if loadErr != nil {
			return verdict{code: CodeUnknownPackage,
				summary: fmt.Sprintf("cannot load package %q", t.pkg),
				detail:  loadErr.Error()}
		}
		p := loaded[t.pkg]
		if p == nil || (len(p.GoFiles) == 0 && len(p.CompiledGoFiles) == 0 && len(p.Errors) > 0) || p.Types == nil {
			v := verdict{code: CodeUnknownPackage,
				summary: fmt.Sprintf("package %q not found", t.pkg),
				hint:    "check the import path, and that the module providing it is required in go.mod"}
			if p != nil && len(p.Errors) > 0 {
				v.detail = p.Errors[0].Msg
			}
			return v
		}
		if len(p.Errors) > 0 {
			return verdict{code: CodePackageError,
				summary: fmt.Sprintf("package %q does not compile", t.pkg),
				detail:  errorsText(p.Errors)}
		}
		return judge(p.Types, t.pkg, t.ident)
	}
	for _, u := range uses {
		v, seen := verdicts[u.ref]
		if !seen {
			v = decide(u.ref)
			verdicts[u.ref] = v
		}
		if v.code == "" {
			refs[u.ref] = v.kind
			continue
		}
		diags = append(diags, spec.Diagnostic{
			Severity: spec.SeverityError, Code: v.code, Summary: v.summary,
			Detail: v.detail, Hint: v.hint, Range: u.rng,
		})
	}
	sortDiags(diags)
	return refs, diags
}

// verdict is the outcome of checking one reference: a kind, or a problem.
type verdict struct {
	kind                        RefKind
	code, summary, detail, hint string
}

// judge looks ident up in pkg and decides how it becomes an fsm.Action.
func judge(pkg *types.Package, pkgPath, ident string) verdict {
	ref := pkgPath + "." + ident
	obj := pkg.Scope().Lookup(ident)
	if obj == nil {
		v := verdict{code: CodeUnknownSymbol,
			summary: fmt.Sprintf("package %q has no symbol %s", pkgPath, ident)}
		if s := closestName(ident, pkg.Scope().Names()); s != "" {
			v.hint = fmt.Sprintf("did you mean %q?", pkgPath+"."+s)
		}
		return v
	}
	if !obj.Exported() {
		return verdict{code: CodeUnexportedSymbol,
			summary: fmt.Sprintf("%s is not exported", ref),
			hint:    fmt.Sprintf("rename it to %s so that the generated main package can use it", exportedName(ident))}
	}
	wrong := func(what string) verdict {
		return verdict{code: CodeWrongActionType,
			summary: fmt.Sprintf("%s is %s, not an action", ref, what),
			detail:  fmt.Sprintf("an action is a type implementing fsm.Action (method Execute(ctx context.Context, c *fsm.Context) (string, error)), a function %s, or a package-level variable holding an fsm.Action", actionSignature),
		}
	}
	switch o := obj.(type) {
	case *types.TypeName:
		t := o.Type()
		if n, ok := t.(*types.Named); ok && n.TypeParams().Len() > 0 {
			return wrong("a generic type")
		}
		if types.IsInterface(t) {
			return wrong("an interface type")
		}
		if implementsAction(t) {
			return verdict{kind: RefValue}
		}
		if implementsAction(types.NewPointer(t)) {
			return verdict{kind: RefPointer}
		}
		v := wrong(describe(obj))
		v.hint = fmt.Sprintf("give %s a method Execute(ctx context.Context, c *fsm.Context) (string, error)", ident)
		return v
	case *types.Func:
		fs, _ := o.Type().(*types.Signature)
		if isActionSignature(fs) {
			return verdict{kind: RefFunc}
		}
		return verdict{code: CodeWrongActionType,
			summary: fmt.Sprintf("function %s has the wrong signature", ref),
			detail:  fmt.Sprintf("got %s, want %s", types.TypeString(o.Type(), shortQualifier), actionSignature),
			hint:    "an action function has the signature " + actionSignature}
	case *types.Var:
		t := o.Type()
		if implementsAction(t) {
			return verdict{kind: RefVar}
		}
		if s, ok := t.Underlying().(*types.Signature); ok && isActionSignature(s) {
			return verdict{kind: RefFunc}
		}
		if implementsAction(types.NewPointer(t)) {
			return verdict{kind: RefVarPointer}
		}
		v := wrong(describe(obj))
		v.hint = "a variable used as an action must hold an fsm.Action (or a function " + actionSignature + ")"
		return v
	}
	return wrong(describe(obj))
}

// isActionSignature reports whether sig is func(context.Context, *fsm.Context)
// (string, error), parameter names aside. It compares by name rather than by
// type identity, so that it holds whichever way go/packages loaded fsm.
func isActionSignature(sig *types.Signature) bool {
	if sig == nil || sig.TypeParams().Len() > 0 || sig.Variadic() {
		return false
	}
	return tupleString(sig.Params()) == "context.Context, *"+FSMPackage+".Context" &&
		tupleString(sig.Results()) == "string, error"
}

func tupleString(t *types.Tuple) string {
	parts := make([]string, t.Len())
	for i := range t.Len() {
		parts[i] = types.TypeString(t.At(i).Type(), nil)
	}
	return strings.Join(parts, ", ")
}

// implementsAction reports whether the method set of t has an Execute method
// with the action signature.
func implementsAction(t types.Type) bool {
	ms := types.NewMethodSet(t)
	sel := ms.Lookup(nil, "Execute")
	if sel == nil {
		return false
	}
	sig, _ := sel.Type().(*types.Signature)
	return isActionSignature(sig)
}

// shortQualifier writes package names instead of import paths.
func shortQualifier(p *types.Package) string { return p.Name() }

// describe says what kind of object obj is, for messages.
func describe(obj types.Object) string {
	switch o := obj.(type) {
	case *types.TypeName:
		return "a type " + types.TypeString(o.Type().Underlying(), types.RelativeTo(o.Pkg()))
	case *types.Var:
		return "a variable of type " + types.TypeString(o.Type(), types.RelativeTo(o.Pkg()))
	case *types.Const:
		return "a constant"
	case *types.Func:
		return "a function"
	}
	return "not a type, function or variable"
}

// exportedName upper-cases the first letter of ident.
func exportedName(ident string) string {
	r, n := utf8.DecodeRuneInString(ident)
	return string(unicode.ToUpper(r)) + ident[n:]
}

// closestName suggests the exported name of names nearest to word: a
// case-insensitive match, else the one within a small edit distance.
func closestName(word string, names []string) string {
	best, bestD := "", max(2, len(word)/3)+1
	for _, n := range names {
		if !token.IsExported(n) {
			continue
		}
		if strings.EqualFold(n, word) {
			return n
		}
		if d := editDistance(strings.ToLower(word), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// errorsText joins package errors, one per line, at most five.
func errorsText(errs []packages.Error) string {
	var lines []string
	for i, e := range errs {
		if i == 5 {
			lines = append(lines, fmt.Sprintf("(and %d more)", len(errs)-5))
			break
		}
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// sortDiags orders diagnostics by file, position, then code.
func sortDiags(d spec.Diagnostics) {
	slices.SortStableFunc(d, func(a, b spec.Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Range.Filename, b.Range.Filename),
			cmp.Compare(a.Range.Start.Line, b.Range.Start.Line),
			cmp.Compare(a.Range.Start.Column, b.Range.Start.Column),
			cmp.Compare(a.Code, b.Code),
		)
	})
}

// Check type-checks the action references of s against the Go module rooted
// at dir, as Build would (lfsm served from its module proxy in cacheDir,
// default DefaultProxyDir(), or taken from a replace in go.mod), but with
// -mod=readonly: it never changes go.mod or go.sum. Problems in the spec are
// diagnostics; err is for everything else (no go command, no go.mod).
func Check(ctx context.Context, dir, cacheDir string, s *spec.Spec) (spec.Diagnostics, error) {
	um, err := readGoMod(dir)
	if err != nil {
		return nil, err
	}
	if um.path == ModulePath {
		return nil, ErrLFSMModule
	}
	user, err := userGoEnv(ctx, dir)
	if err != nil {
		return nil, err
	}
	proxyURL := ""
	if um.replace == "" {
		if _, proxyURL, err = EnsureProxy(cacheDir); err != nil {
			return nil, err
		}
	}
	env := mergeEnv(os.Environ(), user, proxyURL)
	for i, kv := range env {
		if flags, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			env[i] = "GOFLAGS=" + strings.Replace(flags, "-mod=mod", "-mod=readonly", 1)
		}
	}
	_, diags := checkActions(ctx, dir, env, s)
	return diags, nil
}
