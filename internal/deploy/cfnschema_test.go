package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The template checker of these tests: every resource's properties against
// CloudFormation's own resource provider schema for its type
// (testdata/schemas, from aws-cloudformation/rain; see testdata/schemas/README.md),
// with a real JSON Schema validator, plus what a schema cannot say: read-only
// properties set, and Ref, Fn::GetAtt, Fn::Sub and DependsOn naming something
// the template does not have. A value that is an intrinsic function cannot be
// type-checked, so errors at or below it are ignored (and a oneOf/anyOf whose
// branch fails only there is taken as passing).

type cfnSchema struct {
	schema   *jsonschema.Schema
	readOnly []string // property paths, "/"-separated, without "/properties"
	props    map[string]bool
}

var (
	schemasOnce sync.Once
	schemas     map[string]*cfnSchema
	schemasErr  error
)

type anyRegexp struct{ s string }

func (r anyRegexp) MatchString(string) bool { return true }
func (r anyRegexp) String() string          { return r.s }

func loadSchemas() (map[string]*cfnSchema, error) {
	schemasOnce.Do(func() {
		files, err := filepath.Glob(filepath.Join("testdata", "schemas", "*.json"))
		if err != nil || len(files) == 0 {
			schemasErr = fmt.Errorf("no schemas in testdata/schemas: %v", err)
			return
		}
		schemas = map[string]*cfnSchema{}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				schemasErr = err
				return
			}
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				schemasErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			typ, _ := raw["typeName"].(string)
			// The provider meta-schema is not a JSON Schema draft the
			// validator knows; the documents are draft-07 otherwise.
			delete(raw, "$schema")
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(raw)))
			if err != nil {
				schemasErr = err
				return
			}
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft7)
			// Some patterns use syntax Go's regexp lacks (lookarounds);
			// those accept anything rather than fail the compile.
			c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
				if re, err := regexp.Compile(s); err == nil {
					return re, nil
				}
				return anyRegexp{s}, nil
			})
			url := "file:///" + filepath.Base(f)
			if err := c.AddResource(url, doc); err != nil {
				schemasErr = err
				return
			}
			sch, err := c.Compile(url)
			if err != nil {
				schemasErr = fmt.Errorf("compile %s: %w", f, err)
				return
			}
			cs := &cfnSchema{schema: sch, props: map[string]bool{}}
			ro, _ := raw["readOnlyProperties"].([]any)
			for _, p := range ro {
				cs.readOnly = append(cs.readOnly, strings.TrimPrefix(p.(string), "/properties/"))
			}
			for p := range raw["properties"].(map[string]any) {
				cs.props[p] = true
			}
			schemas[typ] = cs
		}
	})
	return schemas, schemasErr
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// isIntrinsic reports whether v is {"Ref": ...} or {"Fn::X": ...}.
func isIntrinsic(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	for k := range m {
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, true
		}
	}
	return "", false
}

var pseudoParams = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

// checkTemplate returns every problem of tmpl, sorted.
func checkTemplate(tmpl *Template) ([]string, error) {
	sch, err := loadSchemas()
	if err != nil {
		return nil, err
	}
	// Round-trip through JSON: that is what CloudFormation receives.
	var doc struct {
		Parameters map[string]any
		Resources  map[string]struct {
			Type       string
			DependsOn  []string
			Properties map[string]any
		}
		Outputs map[string]struct{ Value any }
	}
	b, err := tmpl.JSON()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var probs []string
	report := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	typeOf := func(id string) (string, bool) {
		r, ok := doc.Resources[id]
		return r.Type, ok
	}
	checkRef := func(where, target string) {
		if _, ok := doc.Parameters[target]; ok {
			return
		}
		if _, ok := typeOf(target); ok || slices.Contains(pseudoParams, target) {
			return
		}
		report("%s: Ref to %q, which is no resource, parameter or pseudo parameter", where, target)
	}
	checkGetAtt := func(where, id, attr string) {
		typ, ok := typeOf(id)
		if !ok {
			report("%s: Fn::GetAtt of %q, which is no resource", where, id)
			return
		}
		s := sch[typ]
		if s == nil {
			return // reported below
		}
		path := strings.ReplaceAll(attr, ".", "/")
		if !slices.Contains(s.readOnly, path) && !s.props[attr] {
			report("%s: Fn::GetAtt %s.%s: %s has no attribute %q", where, id, attr, typ, attr)
		}
	}
	subRE := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
	var walk func(where string, v any, vars map[string]bool)
	walk = func(where string, v any, vars map[string]bool) {
		switch v := v.(type) {
		case map[string]any:
			if k, ok := isIntrinsic(v); ok {
				switch k {
				case "Ref":
					s, _ := v[k].(string)
					checkRef(where, s)
				case "Fn::GetAtt":
					var id, attr string
					switch a := v[k].(type) {
					case []any:
						if len(a) == 2 {
							id, _ = a[0].(string)
							attr, _ = a[1].(string)
						}
					case string:
						id, attr, _ = strings.Cut(a, ".")
					}
					checkGetAtt(where, id, attr)
				case "Fn::Sub":
					s, _ := v[k].(string)
					local := map[string]bool{}
					if a, ok := v[k].([]any); ok && len(a) == 2 {
						s, _ = a[0].(string)
						for name, val := range a[1].(map[string]any) {
							local[name] = true
							walk(where, val, vars)
						}
					}
					for _, m := range subRE.FindAllStringSubmatch(s, -1) {
						ref := m[1]
						if local[ref] {
							continue
						}
						if id, attr, ok := strings.Cut(ref, "."); ok && !strings.HasPrefix(ref, "AWS::") {
							checkGetAtt(where, id, attr)
						} else {
							checkRef(where, ref)
						}
					}
					return
				}
			}
			for k, e := range v {
				walk(where+"."+k, e, vars)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", where, i), e, vars)
			}
		}
	}

	for id, r := range doc.Resources {
		where := "Resources." + id
		for _, d := range r.DependsOn {
			if _, ok := typeOf(d); !ok {
				report("%s: DependsOn %q, which is no resource", where, d)
			}
		}
		walk(where+".Properties", r.Properties, nil)
		s := sch[r.Type]
		if s == nil {
			report("%s: no schema for type %s in testdata/schemas", where, r.Type)
			continue
		}
		for _, ro := range s.readOnly {
			if hasPath(r.Properties, strings.Split(ro, "/")) {
				report("%s: read-only property %s is set (AWS sets it)", where, ro)
			}
		}
		props := r.Properties
		if props == nil {
			props = map[string]any{}
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(props)))
		if err != nil {
			return nil, err
		}
		intrinsics := intrinsicPaths(props, nil)
		if err := s.schema.Validate(inst); err != nil {
			var ve *jsonschema.ValidationError
			if !asValidation(err, &ve) {
				return nil, err
			}
			for _, e := range realErrors(ve, intrinsics) {
				report("%s.Properties/%s: %s", where, strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(printer))
			}
		}
	}
	for k, o := range doc.Outputs {
		walk("Outputs."+k, o.Value, nil)
	}
	sort.Strings(probs)
	return slices.Compact(probs), nil
}

var printer = message.NewPrinter(language.English)

func asValidation(err error, ve **jsonschema.ValidationError) bool {
	v, ok := err.(*jsonschema.ValidationError)
	*ve = v
	return ok
}

func hasPath(v any, path []string) bool {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[p]; !ok {
			return false
		}
	}
	return true
}

// intrinsicPaths lists the instance locations whose value is an intrinsic.
func intrinsicPaths(v any, at []string) [][]string {
	if _, ok := isIntrinsic(v); ok {
		return [][]string{slices.Clone(at)}
	}
	var out [][]string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out = append(out, intrinsicPaths(e, append(at, k))...)
		}
	case []any:
		for i, e := range v {
			out = append(out, intrinsicPaths(e, append(at, fmt.Sprint(i)))...)
		}
	}
	return out
}

func under(loc []string, paths [][]string) bool {
	for _, p := range paths {
		if len(loc) >= len(p) && slices.Equal(loc[:len(p)], p) {
			return true
		}
	}
	return false
}

func hasBelow(loc []string, paths [][]string) bool {
	for _, p := range paths {
		if len(p) >= len(loc) && slices.Equal(p[:len(loc)], loc) {
			return true
		}
	}
	return false
}

// realErrors returns the leaf errors of e that are not explained by an
// intrinsic value standing where a typed value was expected.
func realErrors(e *jsonschema.ValidationError, intrinsics [][]string) []*jsonschema.ValidationError {
	if under(e.InstanceLocation, intrinsics) {
		return nil
	}
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		if len(e.Causes) == 0 {
			// oneOf matched several branches: may be the placeholder's doing.
			if hasBelow(e.InstanceLocation, intrinsics) {
				return nil
			}
			return []*jsonschema.ValidationError{e}
		}
		for _, c := range e.Causes {
			if len(realErrors(c, intrinsics)) == 0 {
				return nil // this branch would pass
			}
		}
		return []*jsonschema.ValidationError{e}
	}
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, realErrors(c, intrinsics)...)
	}
	return out
}

// assertValid fails t with every problem of tmpl.
func assertValid(t *testing.T, tmpl *Template) {
	t.Helper()
	probs, err := checkTemplate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
}
