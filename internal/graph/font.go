package graph

import (
	_ "embed"
	"fmt"
	"sync"

	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// labelFont is Liberation Sans Regular (fonts/LICENSE: SIL Open Font License),
// which has the advance widths of Helvetica and Arial: Graphviz lays labels out
// with Helvetica's metrics, so text drawn in it fits the boxes the layout made.
// SVG and PNG both draw their text with its glyph outlines, so that they look
// the same in every viewer, whatever fonts it has.
//
//go:embed fonts/LiberationSans-Regular.ttf
var labelFontData []byte

var (
	fontOnce sync.Once
	fontVal  *glyphFont
	fontErr  error
)

// glyphFont holds the outlines and advances of the glyphs used so far, in font
// units (y down, baseline at 0).
type glyphFont struct {
	mu     sync.Mutex
	f      *sfnt.Font
	buf    sfnt.Buffer
	upem   float64
	glyphs map[rune]*glyph
}

// glyph is one glyph's outline and advance, in font units.
type glyph struct {
	index   sfnt.GlyphIndex
	advance float64
	path    []pathSeg
}

// pathSeg is a segment of a glyph outline: op is 'M', 'L', 'Q' or 'C', with
// one, one, two or three points (x, y pairs).
type pathSeg struct {
	op  byte
	pts [6]float64
}

func loadFont() (*glyphFont, error) {
	fontOnce.Do(func() {
		f, err := sfnt.Parse(labelFontData)
		if err != nil {
			fontErr = fmt.Errorf("parse the label font: %w", err)
			return
		}
		fontVal = &glyphFont{f: f, upem: float64(f.UnitsPerEm()), glyphs: map[rune]*glyph{}}
	})
	return fontVal, fontErr
}

// glyph returns the glyph for r (the font's .notdef box when it has none).
func (g *glyphFont) glyph(r rune) (*glyph, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gl, ok := g.glyphs[r]; ok {
		return gl, nil
	}
	idx, err := g.f.GlyphIndex(&g.buf, r)
	if err != nil {
		return nil, fmt.Errorf("glyph for %q: %w", r, err)
	}
	ppem := fixed.Int26_6(g.f.UnitsPerEm()) << 6
	adv, err := g.f.GlyphAdvance(&g.buf, idx, ppem, 0)
	if err != nil {
		return nil, fmt.Errorf("advance of %q: %w", r, err)
	}
	segs, err := g.f.LoadGlyph(&g.buf, idx, ppem, nil)
	if err != nil {
		return nil, fmt.Errorf("outline of %q: %w", r, err)
	}
	gl := &glyph{index: idx, advance: float64(adv) / 64}
	for _, s := range segs {
		var p pathSeg
		n := 1
		switch s.Op {
		case sfnt.SegmentOpMoveTo:
			p.op = 'M'
		case sfnt.SegmentOpLineTo:
			p.op = 'L'
		case sfnt.SegmentOpQuadTo:
			p.op, n = 'Q', 2
		case sfnt.SegmentOpCubeTo:
			p.op, n = 'C', 3
		}
		for i := range n {
			p.pts[2*i] = float64(s.Args[i].X) / 64
			p.pts[2*i+1] = float64(s.Args[i].Y) / 64
		}
		gl.path = append(gl.path, p)
	}
	g.glyphs[r] = gl
	return gl, nil
}

// placedGlyph is a glyph of a laid-out text: its pen position along the
// baseline, in font units from the text's start.
type placedGlyph struct {
	r *glyph
	x float64
	// ch is the character, for naming the glyph in SVG.
	ch rune
}

// layoutText places the glyphs of text and returns them with the text's
// advance width, in font units.
func (g *glyphFont) layoutText(text string) ([]placedGlyph, float64, error) {
	var out []placedGlyph
	x := 0.0
	for _, r := range text {
		gl, err := g.glyph(r)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, placedGlyph{r: gl, x: x, ch: r})
		x += gl.advance
	}
	return out, x, nil
}
