package spec

import (
	"go/token"
	"strings"
	"unicode"
)

// ParseGoRef splits a Go symbol reference "example.com/shop/actions.ChargeCard"
// into its import path and identifier. ok is false unless the import path holds
// at least one "/" and only valid path elements, and the identifier after the
// last dot is an exported Go identifier. Dotted Python class paths such as
// "examples.ecs.actions.RunTaskAction" are not Go references.
func ParseGoRef(ref string) (pkgPath, ident string, ok bool) {
	slash := strings.LastIndexByte(ref, '/')
	dot := strings.LastIndexByte(ref, '.')
	if slash <= 0 || dot < slash {
		return "", "", false
	}
	pkgPath, ident = ref[:dot], ref[dot+1:]
	if !token.IsIdentifier(ident) || !token.IsExported(ident) || !validImportPath(pkgPath) {
		return "", "", false
	}
	return pkgPath, ident, true
}

// validImportPath is a conservative form of the go command's import path check:
// non-empty slash-separated elements of letters, digits and "-._~+", none of
// them "." or "..", none starting with a dot.
func validImportPath(p string) bool {
	if !strings.Contains(p, "/") {
		return false
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem[0] == '.' || strings.HasSuffix(elem, ".") {
			return false
		}
		for _, r := range elem {
			if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-._~+", r)) {
				return false
			}
		}
	}
	return true
}
