package spec

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// source maps yaml.Node positions (1-based line, 1-based column counted in
// characters) to Pos values with byte offsets, and finds where nodes end.
type source struct {
	name string
	src  []byte
	// lines[i] is the byte offset where line i+1 starts.
	lines []int
}

func newSource(name string, src []byte) *source {
	s := &source{name: name, src: src, lines: []int{0}}
	// The YAML reader skips a byte order mark without counting a column.
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		s.lines[0] = 3
	}
	for i := s.lines[0]; i < len(src); {
		n := breakLen(src, i)
		if n == 0 {
			_, size := utf8.DecodeRune(src[i:])
			i += size
			continue
		}
		i += n
		s.lines = append(s.lines, i)
	}
	return s
}

// breakLen reports the length of the line break at src[i], or 0. It recognises
// the same breaks as the YAML scanner: LF, CR, CRLF, NEL, LS and PS.
func breakLen(src []byte, i int) int {
	switch src[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(src) && src[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if i+1 < len(src) && src[i+1] == 0x85 {
			return 2
		}
	case 0xE2:
		if i+2 < len(src) && src[i+1] == 0x80 && (src[i+2] == 0xA8 || src[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// lineEnd is the byte offset of the end of line l (1-based), before its break.
func (s *source) lineEnd(l int) int {
	start := s.lines[l-1]
	end := len(s.src)
	if l < len(s.lines) {
		end = s.lines[l]
	}
	for i := start; i < end; {
		if n := breakLen(s.src, i); n > 0 {
			return i
		}
		_, size := utf8.DecodeRune(s.src[i:])
		i += size
	}
	return end
}

// pos converts a 1-based line and character column into a Pos, clamping values
// that fall outside the file so that every position is valid.
func (s *source) pos(line, col int) Pos {
	if line < 1 {
		line = 1
	}
	if line > len(s.lines) {
		line = len(s.lines)
	}
	if col < 1 {
		col = 1
	}
	off := s.lines[line-1]
	end := s.lineEnd(line)
	c := 1
	for c < col && off < end {
		_, size := utf8.DecodeRune(s.src[off:])
		off += size
		c++
	}
	return Pos{Line: line, Column: c, Byte: off}
}

// posAt converts a byte offset into a Pos.
func (s *source) posAt(off int) Pos {
	if off < s.lines[0] {
		off = s.lines[0]
	}
	if off > len(s.src) {
		off = len(s.src)
	}
	line := sort.Search(len(s.lines), func(i int) bool { return s.lines[i] > off })
	if line < 1 {
		line = 1
	}
	start := s.lines[line-1]
	end := s.lineEnd(line)
	if off > end {
		off = end
	}
	return Pos{Line: line, Column: utf8.RuneCount(s.src[start:off]) + 1, Byte: off}
}

// rangeOf spans the node from its first to its last character.
func (s *source) rangeOf(n *yaml.Node) Range {
	start := s.pos(n.Line, n.Column)
	end := s.endOf(n, start)
	if end.Byte < start.Byte {
		end = start
	}
	return Range{Filename: s.name, Start: start, End: end}
}

// lineRange spans line l from its first character to its end; used where the
// YAML parser only reports a line.
func (s *source) lineRange(l int) Range {
	start := s.pos(l, 1)
	return Range{Filename: s.name, Start: start, End: s.posAt(s.lineEnd(start.Line))}
}

// endOf finds where n ends in the source. Collections end where their last
// child ends; scalars are measured from their text.
func (s *source) endOf(n *yaml.Node, start Pos) Pos {
	for (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode || n.Kind == yaml.DocumentNode) && len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
		start = s.pos(n.Line, n.Column)
	}
	off := start.Byte
	src := s.src
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		// Empty collection: "{}" or "[]" in flow style.
		if off < len(src) && (src[off] == '{' || src[off] == '[') {
			if off+1 < len(src) && (src[off+1] == '}' || src[off+1] == ']') {
				return s.posAt(off + 2)
			}
			return s.posAt(off + 1)
		}
		return start
	case yaml.AliasNode:
		return s.posAt(off + 1 + len(n.Value))
	case yaml.ScalarNode:
		switch {
		case n.Style&yaml.DoubleQuotedStyle != 0 && off < len(src) && src[off] == '"':
			for i := off + 1; i < len(src); i++ {
				switch src[i] {
				case '\\':
					i++
				case '"':
					return s.posAt(i + 1)
				}
			}
		case n.Style&yaml.SingleQuotedStyle != 0 && off < len(src) && src[off] == '\'':
			for i := off + 1; i < len(src); i++ {
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						i++
						continue
					}
					return s.posAt(i + 1)
				}
			}
		case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && off+len(n.Value) <= len(src) && string(src[off:off+len(n.Value)]) == n.Value:
			return s.posAt(off + len(n.Value))
		}
		if n.Tag == "!!null" && n.Value == "" {
			return start
		}
		return s.posAt(s.lineEnd(start.Line))
	}
	return start
}

// firstBadLine returns the first line at or after from (a line the YAML
// parser named in an error) such that the file up to and including it does
// not parse: the line that breaks the file. Lines before it parse, so it is
// found by binary search over prefixes of whole lines. When the prefix up to
// from already fails, from is returned.
func (s *source) firstBadLine(from int) int {
	n := len(s.lines)
	if from < 1 || from > n {
		return max(1, min(from, n))
	}
	if !s.prefixParses(from - 1) {
		return from
	}
	lo, hi := from-1, n // prefix(lo) parses; the whole file (hi) does not
	if s.prefixParses(hi) {
		return from
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if s.prefixParses(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// prefixParses reports whether lines 1..l of the file are valid YAML.
func (s *source) prefixParses(l int) bool {
	if l <= 0 {
		return true
	}
	end := len(s.src)
	if l < len(s.lines) {
		end = s.lines[l]
	}
	dec := yaml.NewDecoder(bytes.NewReader(s.src[:end]))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// firstToken is the byte offset of the first character of line l that is not
// a space: where the line's first token (or a tab YAML refuses) starts.
func (s *source) firstToken(l int) int {
	off, end := s.lines[l-1], s.lineEnd(l)
	for off < end && s.src[off] == ' ' {
		off++
	}
	return off
}
