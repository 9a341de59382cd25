package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// A small JSON reader and writer for the message hot path. One message crosses
// the queue per transition, and encoding/json's validation pass plus its
// reflection cost more than the rest of a transition; this code validates and
// decodes in one pass and writes the common value types without reflection.
// It has encoding/json's semantics with Decoder.UseNumber (checked by
// FuzzParseJSON against it): values decode to string, json.Number, bool, nil,
// []any and map[string]any, so that a number keeps its literal
// (12345678901234567891 stays that, 1.0 stays 1.0) from message to message;
// strings with escapes or non-ASCII bytes are handed to encoding/json.

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

type scanner struct {
	data []byte
	pos  int
	// src is data as a string, made on first use: the strings and numbers
	// a parse returns are substrings of it, one copy of the input instead of
	// one allocation each.
	src string
}

// text returns data[start:end] as a substring of src.
func (s *scanner) text(start, end int) string {
	if s.src == "" {
		s.src = string(s.data)
	}
	return s.src[start:end]
}

// syntaxError is errSyntax at a known offset of the input.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string        { return e.msg }
func (e *syntaxError) Is(target error) bool { return target == errSyntax }

func (s *scanner) syntaxError(what string) error {
	if s.pos >= len(s.data) {
		return &syntaxError{msg: errSyntax.Error() + ": unexpected end of input", offset: s.pos}
	}
	return &syntaxError{msg: fmt.Sprintf("%v: %s %q at offset %d", errSyntax, what, s.data[s.pos], s.pos), offset: s.pos}
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// end checks that only whitespace is left.
func (s *scanner) end() error {
	if s.ws(); s.pos < len(s.data) {
		return s.syntaxError("invalid character after top-level value")
	}
	return nil
}

// object reads an object, calling member after each key and its colon;
// member must consume the value. The key bytes are valid only during the call
// (they alias the input unless the key had escapes), so that keys matched
// against known names cost no allocation.
func (s *scanner) object(depth int, member func(key []byte) error) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deeply", errSyntax)
	}
	if s.peek() != '{' {
		return s.syntaxError("want an object, got")
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.syntaxError("want a string key, got")
		}
		raw, simple, err := s.strRaw()
		if err != nil {
			return err
		}
		key := raw[1 : len(raw)-1]
		if !simple {
			k, err := unquote(raw)
			if err != nil {
				return err
			}
			key = []byte(k)
		}
		if s.peek() != ':' {
			return s.syntaxError("want ':', got")
		}
		s.pos++
		s.ws()
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntaxError("want ',' or '}', got")
		}
	}
}

// str reads a string at s.pos (which holds '"').
func (s *scanner) str() (string, error) {
	raw, simple, err := s.strRaw()
	if err != nil {
		return "", err
	}
	if simple {
		return s.text(s.pos-len(raw)+1, s.pos-1), nil
	}
	return unquote(raw)
}

func unquote(raw []byte) (string, error) {
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("%w: %v", errSyntax, err)
	}
	return out, nil
}

// strRaw validates the string at s.pos (which holds '"') and returns its text
// with the quotes. simple reports that it has no escapes and is ASCII.
func (s *scanner) strRaw() (raw []byte, simple bool, err error) {
	start := s.pos
	simple = true
	for s.pos++; s.pos < len(s.data); s.pos++ {
		c := s.data[s.pos]
		if plain[c] {
			continue
		}
		switch {
		case c == '"':
			s.pos++
			return s.data[start:s.pos], simple, nil
		case c == '\\':
			simple = false
			s.pos++
			if s.pos >= len(s.data) {
				return nil, false, s.syntaxError("")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.pos+4 >= len(s.data) {
					s.pos = len(s.data)
					return nil, false, s.syntaxError("")
				}
				for _, h := range s.data[s.pos+1 : s.pos+5] {
					if !isHex(h) {
						return nil, false, fmt.Errorf("%w: invalid \\u escape at offset %d", errSyntax, s.pos)
					}
				}
				s.pos += 4
			default:
				return nil, false, s.syntaxError("invalid escape")
			}
		case c < 0x20:
			return nil, false, s.syntaxError("control character in string")
		case c >= utf8.RuneSelf:
			simple = false
		}
	}
	return nil, false, s.syntaxError("")
}

// plain marks the bytes a string scan can pass over: printable ASCII other
// than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number reads a number's text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, s.syntaxError("invalid character in number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.pos >= len(d) || d[s.pos] < '0' || d[s.pos] > '9' {
			return nil, s.syntaxError("want a digit after '.', got")
		}
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.pos >= len(d) || d[s.pos] < '0' || d[s.pos] > '9' {
			return nil, s.syntaxError("want a digit in exponent, got")
		}
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	}
	return d[start:s.pos], nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.syntaxError("invalid literal")
	}
	s.pos += len(word)
	return nil
}

// skip validates the value at s.pos and returns its text.
func (s *scanner) skip(depth int) ([]byte, error) {
	s.ws()
	start := s.pos
	var err error
	switch c := s.peek(); {
	case c == '{':
		err = s.object(depth+1, func([]byte) error { _, err := s.skip(depth + 1); return err })
	case c == '[':
		err = s.array(depth+1, func() error { _, err := s.skip(depth + 1); return err })
	case c == '"':
		_, _, err = s.strRaw()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	default:
		_, err = s.number()
	}
	return s.data[start:s.pos], err
}

func (s *scanner) array(depth int, elem func() error) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deeply", errSyntax)
	}
	s.pos++ // '['
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.syntaxError("want ',' or ']', got")
		}
	}
}

// scalar reads a string, number or literal.
func (s *scanner) scalar() (any, error) {
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		text, err := s.number()
		if err != nil {
			return nil, err
		}
		if v, ok := smallNumber(text); ok {
			return v, nil
		}
		return json.Number(s.text(start, s.pos)), nil
	default:
		return nil, s.syntaxError("invalid character looking for a value:")
	}
}

// smallNumbers holds 0 to 255 as json.Number values already in an
// interface, so that decoding the common small counters allocates nothing.
var smallNumbers = func() (t [256]any) {
	for i := range t {
		t[i] = json.Number(strconv.Itoa(i))
	}
	return t
}()

// smallNumber returns smallNumbers' value for the valid number literal text
// if it is one of them.
func smallNumber(text []byte) (any, bool) {
	if len(text) > 3 {
		return nil, false
	}
	n := 0
	for _, c := range text {
		if c < '0' || c > '9' {
			return nil, false
		}
		n = n*10 + int(c-'0')
	}
	if n >= len(smallNumbers) {
		return nil, false
	}
	return smallNumbers[n], true // text has no leading zeros: it is n's literal
}

// parse decodes the value at s.pos.
func (s *scanner) parse(depth int) (any, error) {
	switch s.peek() {
	case '{':
		m := map[string]any{}
		err := s.object(depth+1, func(key []byte) error {
			v, err := s.parse(depth + 1)
			m[string(key)] = v
			return err
		})
		return m, err
	case '[':
		out := []any{}
		err := s.array(depth+1, func() error {
			v, err := s.parse(depth + 1)
			out = append(out, v)
			return err
		})
		return out, err
	default:
		return s.scalar()
	}
}

// parseJSON decodes one JSON document the way a json.Decoder with UseNumber
// does into an any.
func parseJSON(data []byte) (any, error) {
	s := scanner{data: data}
	v, err := s.parse(0)
	if err != nil {
		return nil, err
	}
	return v, s.end()
}

// parseObject decodes a JSON object (the lazy user context's decoder).
func parseObject(data []byte) (map[string]any, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("decode user context: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("decode user context: not an object")
	}
	return m, nil
}

// errTooDeep: a value nests deeper than the decoder accepts (maxDepth). It
// is also what stops a value that contains itself, which would otherwise
// recurse until the stack overflows (a crash no recover catches).
var errTooDeep = fmt.Errorf("nested deeper than %d levels (or contains itself)", maxDepth)

// appendJSON appends v as JSON: the types parseJSON returns and common Go
// scalars without reflection, anything else through encoding/json. It refuses
// what parseJSON would refuse to read back (errTooDeep).
func appendJSON(b []byte, v any) ([]byte, error) {
	return appendValue(b, v, 1)
}

// appendValue appends v; an object or array in v is read by the scanner at
// depth (see scanner.parse), which refuses depth > maxDepth.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendFloat(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case json.Number:
		return appendNumberLiteral(b, v)
	case map[string]any:
		return appendObjectAt(b, v, depth)
	case []any:
		if depth > maxDepth {
			return nil, errTooDeep
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	default:
		out, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if depth-1+nesting(out) > maxDepth {
			return nil, errTooDeep
		}
		return append(b, out...), nil
	}
}

// nesting returns how deeply the valid JSON text j nests objects and arrays.
func nesting(j []byte) int {
	depth, most, inString := 0, 0, false
	for i := 0; i < len(j); i++ {
		switch c := j[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

// appendObject writes m with sorted keys, like encoding/json.
func appendObject(b []byte, m map[string]any) ([]byte, error) {
	return appendObjectAt(b, m, 1)
}

// appendObjectAt is appendObject for an object the scanner reads at depth.
func appendObjectAt(b []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	if depth > maxDepth {
		return nil, errTooDeep
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k], depth+1); err != nil {
			if errors.Is(err, errTooDeep) {
				return nil, err // one message, not one "key" per level
			}
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// appendNumberLiteral writes n as it is, as encoding/json does: it must be a
// JSON number; the empty Number is 0.
func appendNumberLiteral(b []byte, n json.Number) ([]byte, error) {
	if n == "" {
		return append(b, '0'), nil
	}
	s := scanner{data: []byte(n)}
	if _, err := s.number(); err != nil || s.pos != len(s.data) {
		return nil, fmt.Errorf("json: invalid number literal %q", string(n))
	}
	return append(b, n...), nil
}

// appendFloat formats f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
