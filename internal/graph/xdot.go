package graph

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/awalterschulze/gographviz"
	"github.com/awalterschulze/gographviz/ast"
)

// drawing is the layout Graphviz computed for one graph, as its xdot drawing
// operations (https://graphviz.org/docs/outputs/canon/#xdot), in the order
// Graphviz emits them: the graph's, then each node's and edge's.
type drawing struct {
	// width and height of the bounding box, in points; y grows upwards.
	width, height float64
	ops           []drawOp
}

// drawOp is one xdot operation, with the drawing state it runs in.
type drawOp struct {
	// kind is the xdot operation: 'E'/'e' filled/unfilled ellipse, 'P'/'p'
	// polygon, 'L' polyline, 'B'/'b' B-spline, 'T' text.
	kind   byte
	points []float64 // x, y pairs; for an ellipse: center x, y and radii w, h
	pen    string    // pen colour ("#rrggbb", "#rrggbbaa" or a name)
	fill   string
	style  string  // "solid", "dashed", "dotted" or "invis"
	width  float64 // pen width, in points
	// Text: alignment -1 left, 0 centre, 1 right of points[0], the baseline;
	// textWidth as Graphviz measured it; the font size in points.
	align     int
	textWidth float64
	fontSize  float64
	text      string
}

// drawAttrs are the attributes that hold drawing operations, in drawing order.
var drawAttrs = []string{"_draw_", "_ldraw_", "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_"}

// parseXDot reads Graphviz's xdot output (DOT with the layout's drawing
// operations as attributes) with gographviz.
func parseXDot(xdot []byte) (*drawing, error) {
	g, err := gographviz.Parse(xdot)
	if err != nil {
		return nil, fmt.Errorf("read graphviz layout: %w", err)
	}
	d := &drawing{}
	add := func(attrs map[string]string) error {
		if bb, ok := attrs["bb"]; ok {
			var x0, y0 float64
			if _, err := fmt.Sscanf(unquoteDOT(bb), "%g,%g,%g,%g", &x0, &y0, &d.width, &d.height); err != nil {
				return fmt.Errorf("read graphviz layout: bounding box %s: %w", bb, err)
			}
		}
		for _, name := range drawAttrs {
			if v, ok := attrs[name]; ok {
				ops, err := parseOps(unquoteDOT(v))
				if err != nil {
					return fmt.Errorf("read graphviz layout: %s: %w", name, err)
				}
				d.ops = append(d.ops, ops...)
			}
		}
		return nil
	}
	for _, st := range g.StmtList {
		var err error
		switch st := st.(type) {
		case ast.GraphAttrs:
			err = add(ast.AttrList(st).GetMap())
		case *ast.Attr:
			err = add(map[string]string{st.Field.String(): st.Value.String()})
		case *ast.NodeStmt:
			err = add(st.Attrs.GetMap())
		case *ast.EdgeStmt:
			err = add(st.Attrs.GetMap())
		}
		if err != nil {
			return nil, err
		}
	}
	if d.width <= 0 || d.height <= 0 {
		return nil, fmt.Errorf("read graphviz layout: no bounding box")
	}
	return d, nil
}

// unquoteDOT returns the value of an xdot attribute: a quoted string loses its
// quotes and line continuations (backslash newline, which Graphviz inserts in
// long lines, even inside a text), and \" and \\ stand for a quote and a
// backslash (the byte counts of xdot's texts count them once).
func unquoteDOT(id string) string {
	if len(id) < 2 || id[0] != '"' || id[len(id)-1] != '"' {
		return id
	}
	s := id[1 : len(id)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '"', '\\':
				b.WriteByte(s[i+1])
				i++
				continue
			case '\n':
				i++
				continue
			case '\r':
				i++
				if i+1 < len(s) && s[i+1] == '\n' {
					i++
				}
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// opReader reads the tokens of one xdot attribute.
type opReader struct {
	s   string
	pos int
}

func (r *opReader) skipSpace() {
	for r.pos < len(r.s) && (r.s[r.pos] == ' ' || r.s[r.pos] == '\n' || r.s[r.pos] == '\t' || r.s[r.pos] == '\r') {
		r.pos++
	}
}

func (r *opReader) word() (string, error) {
	r.skipSpace()
	start := r.pos
	for r.pos < len(r.s) && r.s[r.pos] != ' ' && r.s[r.pos] != '\n' && r.s[r.pos] != '\t' && r.s[r.pos] != '\r' {
		r.pos++
	}
	if start == r.pos {
		return "", fmt.Errorf("unexpected end at byte %d", start)
	}
	return r.s[start:r.pos], nil
}

func (r *opReader) number() (float64, error) {
	w, err := r.word()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(w, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q at byte %d", w, r.pos-len(w))
	}
	return f, nil
}

// text reads "n -bytes": a byte count, a dash and that many bytes.
func (r *opReader) text() (string, error) {
	n, err := r.number()
	if err != nil {
		return "", err
	}
	r.skipSpace()
	if r.pos >= len(r.s) || r.s[r.pos] != '-' {
		return "", fmt.Errorf("string without '-' at byte %d", r.pos)
	}
	r.pos++
	end := r.pos + int(n)
	if n < 0 || end > len(r.s) {
		return "", fmt.Errorf("string of %v bytes runs past the end at byte %d", n, r.pos)
	}
	t := r.s[r.pos:end]
	r.pos = end
	return t, nil
}

func (r *opReader) points(n int) ([]float64, error) {
	pts := make([]float64, 0, 2*n)
	for range 2 * n {
		f, err := r.number()
		if err != nil {
			return nil, err
		}
		pts = append(pts, f)
	}
	return pts, nil
}

// parseOps reads one attribute's operations. Each attribute starts from the
// default state: black pen and fill, solid, 1 point wide.
func parseOps(s string) ([]drawOp, error) {
	r := &opReader{s: s}
	st := drawOp{pen: "black", fill: "black", style: "solid", width: 1, fontSize: 14}
	var out []drawOp
	for {
		r.skipSpace()
		if r.pos >= len(r.s) {
			return out, nil
		}
		op := r.s[r.pos]
		r.pos++
		var err error
		switch op {
		case 'c':
			st.pen, err = r.text()
		case 'C':
			st.fill, err = r.text()
		case 'S':
			var style string
			if style, err = r.text(); err == nil {
				applyStyle(&st, style)
			}
		case 'F':
			if st.fontSize, err = r.number(); err == nil {
				_, err = r.text()
			}
		case 't':
			_, err = r.number()
		case 'E', 'e':
			o := st
			o.kind = op
			o.points, err = r.points(2)
			out = append(out, o)
		case 'P', 'p', 'L', 'B', 'b':
			var n float64
			if n, err = r.number(); err == nil {
				o := st
				o.kind = op
				o.points, err = r.points(int(n))
				out = append(out, o)
			}
		case 'T':
			o := st
			o.kind = 'T'
			if o.points, err = r.points(1); err != nil {
				break
			}
			var align float64
			if align, err = r.number(); err != nil {
				break
			}
			o.align = int(align)
			if o.textWidth, err = r.number(); err != nil {
				break
			}
			o.text, err = r.text()
			out = append(out, o)
		case 'I':
			// An image: lfsm draws none; skip its box and name.
			if _, err = r.points(2); err == nil {
				_, err = r.text()
			}
		case 'G', 'g':
			// Gradients: lfsm draws none; skip the colour spec.
			_, err = r.text()
		default:
			err = fmt.Errorf("unknown operation %q at byte %d", op, r.pos-1)
		}
		if err != nil {
			return nil, err
		}
	}
}

// applyStyle applies an xdot style to the drawing state.
func applyStyle(st *drawOp, style string) {
	switch {
	case style == "dashed" || style == "dotted" || style == "solid" || style == "invis" || style == "invisible":
		st.style = style
	case style == "bold":
		st.width = 2
	case strings.HasPrefix(style, "setlinewidth("):
		if w, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(style, "setlinewidth("), ")"), 64); err == nil {
			st.width = w
		}
	}
}
