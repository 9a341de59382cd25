package graph

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/fogleman/gg"
)

// pngScale is the PNG's pixels per point: twice the 72 points of an inch, so
// the image is sharp on high-density screens and readable when scaled down.
const pngScale = 2

// imagePad is the margin around the layout, in points, as Graphviz's SVG has it.
const imagePad = 4

// pngSize returns the pixel size of the PNG of a drawing.
func pngSize(d *drawing) (w, h int) {
	return int(math.Ceil((d.width + 2*imagePad) * pngScale)), int(math.Ceil((d.height + 2*imagePad) * pngScale))
}

// writePNG draws d as Graphviz's SVG renderer draws it (same shapes, strokes,
// dash patterns and colours, text in the label font's outlines) and writes it
// as PNG. lfsm draws PNG itself because go-graphviz's own PNG renderer drops
// straight edges and outlines and fills curves.
func writePNG(w io.Writer, d *drawing) error {
	f, err := loadFont()
	if err != nil {
		return err
	}
	pw, ph := pngSize(d)
	dc := gg.NewContext(pw, ph)
	dc.SetRGB(1, 1, 1)
	dc.Clear()
	dc.SetLineJoinRound()
	dc.SetLineCapButt()
	// Layout points (y up) to pixels (y down), with the margin.
	px := func(x float64) float64 { return (x + imagePad) * pngScale }
	py := func(y float64) float64 { return (d.height - y + imagePad) * pngScale }
	for _, op := range d.ops {
		if op.style == "invis" || op.style == "invisible" {
			continue
		}
		if op.kind == 'T' {
			if err := drawText(dc, f, op, px(op.points[0]), py(op.points[1])); err != nil {
				return err
			}
			continue
		}
		pts := op.points
		switch op.kind {
		case 'E', 'e':
			dc.DrawEllipse(px(pts[0]), py(pts[1]), pts[2]*pngScale, pts[3]*pngScale)
		case 'P', 'p':
			for i := 0; i+1 < len(pts); i += 2 {
				dc.LineTo(px(pts[i]), py(pts[i+1]))
			}
			dc.ClosePath()
		case 'L':
			for i := 0; i+1 < len(pts); i += 2 {
				dc.LineTo(px(pts[i]), py(pts[i+1]))
			}
		case 'B', 'b':
			if len(pts) < 2 {
				continue
			}
			dc.MoveTo(px(pts[0]), py(pts[1]))
			for i := 2; i+5 < len(pts); i += 6 {
				dc.CubicTo(px(pts[i]), py(pts[i+1]), px(pts[i+2]), py(pts[i+3]), px(pts[i+4]), py(pts[i+5]))
			}
		}
		filled := op.kind == 'E' || op.kind == 'P' || op.kind == 'b'
		if filled {
			if c, ok := parseColor(op.fill); ok {
				dc.SetColor(c)
				dc.FillPreserve()
			}
		}
		if c, ok := parseColor(op.pen); ok {
			dc.SetColor(c)
			dc.SetLineWidth(op.width * pngScale)
			switch op.style {
			case "dashed":
				dc.SetDash(5*pngScale, 2*pngScale)
			case "dotted":
				dc.SetDash(1*pngScale, 5*pngScale)
			default:
				dc.SetDash()
			}
			dc.StrokePreserve()
		}
		dc.ClearPath()
	}
	if err := dc.EncodePNG(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

// drawText fills the outlines of a text op's glyphs, baseline at (x, y) pixels.
func drawText(dc *gg.Context, f *glyphFont, op drawOp, x, y float64) error {
	c, ok := parseColor(op.pen)
	if !ok {
		return nil
	}
	glyphs, width, err := f.layoutText(op.text)
	if err != nil {
		return err
	}
	k := op.fontSize * pngScale / f.upem
	x -= textStart(op.align, width*k)
	dc.SetFillRuleWinding()
	for _, g := range glyphs {
		ox := x + g.x*k
		for _, s := range g.r.path {
			p := s.pts
			switch s.op {
			case 'M':
				dc.NewSubPath()
				dc.MoveTo(ox+p[0]*k, y+p[1]*k)
			case 'L':
				dc.LineTo(ox+p[0]*k, y+p[1]*k)
			case 'Q':
				dc.QuadraticTo(ox+p[0]*k, y+p[1]*k, ox+p[2]*k, y+p[3]*k)
			case 'C':
				dc.CubicTo(ox+p[0]*k, y+p[1]*k, ox+p[2]*k, y+p[3]*k, ox+p[4]*k, y+p[5]*k)
			}
		}
	}
	dc.SetColor(c)
	dc.Fill()
	return nil
}

// textStart is how far left of its anchor a text of the given width starts:
// align is -1 (start), 0 (middle) or 1 (end), as xdot and SVG's text-anchor say.
func textStart(align int, width float64) float64 {
	switch {
	case align < 0:
		return 0
	case align > 0:
		return width
	default:
		return width / 2
	}
}

// namedColors are the colour names lfsm's DOT uses; Graphviz's xdot writes
// most colours as #rrggbb already.
var namedColors = map[string]color.RGBA{
	"black": {0, 0, 0, 255}, "white": {255, 255, 255, 255}, "red": {255, 0, 0, 255},
	"gray50": {127, 127, 127, 255}, "grey50": {127, 127, 127, 255}, "gray": {192, 192, 192, 255},
}

// parseColor reads "#rrggbb", "#rrggbbaa" or a known name; ok is false for
// "none", a transparent colour or a name it does not know.
func parseColor(s string) (color.Color, bool) {
	if strings.HasPrefix(s, "#") && (len(s) == 7 || len(s) == 9) {
		v, err := strconv.ParseUint(s[1:], 16, 32)
		if err != nil {
			return nil, false
		}
		if len(s) == 7 {
			v = v<<8 | 0xff
		}
		c := color.NRGBA{uint8(v >> 24), uint8(v >> 16), uint8(v >> 8), uint8(v)}
		if c.A == 0 {
			return nil, false
		}
		return c, true
	}
	if c, ok := namedColors[strings.ToLower(s)]; ok {
		return c, true
	}
	return nil, false
}
