package graph

import (
	"bytes"
	"cmp"
	"fmt"
	"html"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// fontStack names fonts with Helvetica's advance widths, the metrics the layout
// was made with, before the generic family.
const fontStack = `Helvetica,Arial,'Liberation Sans',sans-serif`

var (
	svgText    = regexp.MustCompile(`<text ([^>]*)>([^<]*)</text>`)
	svgAttr    = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
	svgOpenTag = regexp.MustCompile(`<svg [^>]*>`)
)

// fixSVGText makes Graphviz's SVG look the same in every viewer. Graphviz
// measures labels with Helvetica's metrics and names "Helvetica,sans-Serif":
// where neither Helvetica nor a metric twin is installed (a bare Debian has
// only DejaVu Sans, which is wider), text ran out of the state boxes, and
// neither textLength nor @font-face helps in rsvg-convert. So every label is
// drawn with the glyph outlines of the embedded label font (defined once each
// in <defs>, placed with <use>), exactly as the PNG draws them; the <text>
// stays, transparent, so that the labels can still be searched, selected and
// read out, and it names a font stack the layout's metrics fit.
func fixSVGText(svg []byte) ([]byte, error) {
	f, err := loadFont()
	if err != nil {
		return nil, err
	}
	defined := map[rune]string{}
	var defs bytes.Buffer
	var failed error
	out := svgText.ReplaceAllFunc(svg, func(m []byte) []byte {
		sub := svgText.FindSubmatch(m)
		attrs := map[string]string{}
		for _, a := range svgAttr.FindAllSubmatch(sub[1], -1) {
			attrs[string(a[1])] = string(a[2])
		}
		text := html.UnescapeString(string(sub[2]))
		x, errX := strconv.ParseFloat(attrs["x"], 64)
		y, errY := strconv.ParseFloat(attrs["y"], 64)
		size, errS := strconv.ParseFloat(attrs["font-size"], 64)
		if errX != nil || errY != nil || errS != nil || text == "" {
			return m
		}
		glyphs, width, err := f.layoutText(text)
		if err != nil {
			failed = err
			return m
		}
		k := size / f.upem
		align := 0
		switch attrs["text-anchor"] {
		case "start":
			align = -1
		case "end":
			align = 1
		}
		fill := cmp.Or(attrs["fill"], "black")
		var b bytes.Buffer
		fmt.Fprintf(&b, `<g fill="%s" transform="translate(%s,%s) scale(%s)">`, fill,
			num(x-textStart(align, width*k)), num(y), strconv.FormatFloat(k, 'g', 6, 64))
		for _, g := range glyphs {
			if len(g.r.path) == 0 {
				continue
			}
			id, ok := defined[g.ch]
			if !ok {
				id = "lfsm-glyph-" + strconv.Itoa(int(g.r.index))
				defined[g.ch] = id
				fmt.Fprintf(&defs, `<path id="%s" d="%s"/>`+"\n", id, glyphPathData(g.r))
			}
			fmt.Fprintf(&b, `<use xlink:href="#%s" x="%s"/>`, id, num(g.x))
		}
		b.WriteString("</g>\n")
		// The text itself, invisible, in a font stack that fits the layout.
		tag := strings.Replace(string(m), `font-family="Helvetica,sans-Serif"`, `font-family="`+fontStack+`"`, 1)
		if strings.Contains(tag, ` fill="`) {
			tag = svgAttr.ReplaceAllStringFunc(tag, func(a string) string {
				if strings.HasPrefix(a, `fill="`) {
					return `fill="none"`
				}
				return a
			})
		} else {
			tag = strings.Replace(tag, "<text ", `<text fill="none" `, 1)
		}
		b.WriteString(tag)
		return b.Bytes()
	})
	if failed != nil {
		return nil, failed
	}
	if defs.Len() == 0 {
		return out, nil
	}
	loc := svgOpenTag.FindIndex(out)
	if loc == nil {
		return nil, fmt.Errorf("svg from graphviz has no <svg> element")
	}
	var res bytes.Buffer
	res.Grow(len(out) + defs.Len() + 32)
	res.Write(out[:loc[1]])
	res.WriteString("\n<defs>\n")
	res.Write(defs.Bytes())
	res.WriteString("</defs>")
	res.Write(out[loc[1]:])
	return res.Bytes(), nil
}

// glyphPathData is a glyph's outline as SVG path data, in font units.
func glyphPathData(g *glyph) string {
	var b strings.Builder
	for i, s := range g.path {
		if s.op == 'M' && i > 0 {
			b.WriteString("Z")
		}
		b.WriteByte(s.op)
		n := map[byte]int{'M': 1, 'L': 1, 'Q': 2, 'C': 3}[s.op]
		for j := range 2 * n {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(num(s.pts[j]))
		}
	}
	if len(g.path) > 0 {
		b.WriteString("Z")
	}
	return b.String()
}

// num writes a coordinate with at most two decimals.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
