package graph

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/spec"
)

// imageCases are the machines the image tests draw: the seed, both machines of
// the reference example (Billing has a self-loop and a final state without exit
// action), and one with a self-loop, local (dashed) transitions and a dotted
// end edge.
var imageCases = []struct {
	file, machine string
}{
	{"../../examples/seed/fsm.yaml", "Example"},
	{"../../examples/reference/fsm.yaml", "Example"},
	{"../../examples/reference/fsm.yaml", "Billing"},
	{"testdata/specs/loops.yaml", "Loops"},
}

func loadFile(t *testing.T, path string) *spec.Spec {
	t.Helper()
	s, diags := spec.Load(path)
	if diags.HasErrors() {
		t.Fatalf("load %s: %v", path, diags.Err())
	}
	return s
}

func renderBytes(t *testing.T, s *spec.Spec, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(t.Context(), &buf, s, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// inkMask marks the pixels of img darker than light grey (the dotted grey end
// edge is ink too).
type inkMask struct {
	w, h int
	ink  []bool
	n    int
}

func newInkMask(img image.Image) *inkMask {
	b := img.Bounds()
	m := &inkMask{w: b.Dx(), h: b.Dy(), ink: make([]bool, b.Dx()*b.Dy())}
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			r, g, bl, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			// Composite on white, then luminance.
			wr, wg, wb := r+(0xffff-a), g+(0xffff-a), bl+(0xffff-a)
			lum := (299*wr + 587*wg + 114*wb) / 1000
			if lum < 0xcccc {
				m.ink[y*m.w+x] = true
				m.n++
			}
		}
	}
	return m
}

// covered returns the share of m's ink pixels that have ink of o within r
// pixels, mapping coordinates when the sizes differ.
func (m *inkMask) covered(o *inkMask, r int) float64 {
	if m.n == 0 {
		return 0
	}
	hit := 0
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			if !m.ink[y*m.w+x] {
				continue
			}
			ox, oy := x*o.w/m.w, y*o.h/m.h
		search:
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					px, py := ox+dx, oy+dy
					if px >= 0 && py >= 0 && px < o.w && py < o.h && o.ink[py*o.w+px] {
						hit++
						break search
					}
				}
			}
		}
	}
	return float64(hit) / float64(m.n)
}

// rasteriseSVG renders svg with rsvg-convert (Debian: librsvg2-bin) at w x h
// pixels; without it the test skips (TestPNGDrawsTheLayout still runs), or
// fails when LFSM_TEST_RSVG=1 says it must run.
func rasteriseSVG(t *testing.T, svg []byte, w, h int) image.Image {
	t.Helper()
	if _, err := exec.LookPath("rsvg-convert"); err != nil {
		if os.Getenv("LFSM_TEST_RSVG") == "1" {
			t.Fatal("rsvg-convert not on PATH (install librsvg2-bin): the svg cannot be compared")
		}
		t.Skip("rsvg-convert not on PATH (install librsvg2-bin) to compare the png with the svg")
	}
	cmd := exec.CommandContext(t.Context(), "rsvg-convert", "-w", strconv.Itoa(w), "-h", strconv.Itoa(h), "-b", "white")
	cmd.Stdin = bytes.NewReader(svg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, &stderr)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPNGAgreesWithSVG draws each machine as PNG and as SVG (rasterised by
// rsvg-convert at the PNG's size) and compares their ink both ways: nearly all
// of each one's dark pixels must lie within 2 pixels (1 point) of the
// other's. go-graphviz's own PNG renderer failed this: it dropped straight
// edges, state outlines and the end node's ring, and filled curves black.
func TestPNGAgreesWithSVG(t *testing.T) {
	for _, c := range imageCases {
		t.Run(filepath.Base(filepath.Dir(c.file))+"/"+c.machine, func(t *testing.T) {
			s := loadFile(t, c.file)
			opts := Options{Machine: c.machine, Lambdas: true}
			opts.Format = FormatPNG
			pngData := renderBytes(t, s, opts)
			opts.Format = FormatSVG
			svg := renderBytes(t, s, opts)
			pimg, err := png.Decode(bytes.NewReader(pngData))
			if err != nil {
				t.Fatalf("png does not decode: %v", err)
			}
			b := pimg.Bounds()
			simg := rasteriseSVG(t, svg, b.Dx(), b.Dy())
			p, q := newInkMask(pimg), newInkMask(simg)
			if p.n == 0 || q.n == 0 {
				t.Fatalf("no ink: png %d pixels, svg %d pixels", p.n, q.n)
			}
			const want = 0.99
			t.Logf("png ink near svg ink: %.2f%%, svg ink near png ink: %.2f%%", 100*p.covered(q, 2), 100*q.covered(p, 2))
			if got := p.covered(q, 2); got < want {
				t.Errorf("%.1f%% of the png's ink lies near the svg's, want at least %.0f%%", 100*got, 100*want)
			}
			if got := q.covered(p, 2); got < want {
				t.Errorf("%.1f%% of the svg's ink lies near the png's, want at least %.0f%%", 100*got, 100*want)
			}
			if t.Failed() {
				dir := t.TempDir()
				os.WriteFile(filepath.Join(dir, "out.png"), pngData, 0o644)
				os.WriteFile(filepath.Join(dir, "out.svg"), svg, 0o644)
				t.Logf("images kept in %s", dir)
			}
		})
	}
}

// TestPNGDrawsTheLayout checks, without any SVG renderer, that the PNG has ink
// wherever the layout draws: on every edge's curve, every polygon's and
// polyline's vertices and every ellipse's rightmost point.
func TestPNGDrawsTheLayout(t *testing.T) {
	for _, c := range imageCases {
		t.Run(filepath.Base(filepath.Dir(c.file))+"/"+c.machine, func(t *testing.T) {
			s := loadFile(t, c.file)
			pngData := renderBytes(t, s, Options{Machine: c.machine, Lambdas: true, Format: FormatPNG})
			img, err := png.Decode(bytes.NewReader(pngData))
			if err != nil {
				t.Fatal(err)
			}
			d := layoutOf(t, s, c.machine)
			mask := newInkMask(img)
			inkNear := func(x, y float64) bool {
				px, py := int((x+imagePad)*pngScale), int((d.height-y+imagePad)*pngScale)
				for dy := -2; dy <= 2; dy++ {
					for dx := -2; dx <= 2; dx++ {
						qx, qy := px+dx, py+dy
						if qx >= 0 && qy >= 0 && qx < mask.w && qy < mask.h && mask.ink[qy*mask.w+qx] {
							return true
						}
					}
				}
				return false
			}
			checked := 0
			for _, op := range d.ops {
				var pts [][2]float64
				switch op.kind {
				case 'B', 'b', 'P', 'p', 'L':
					for i := 0; i+1 < len(op.points); i += 2 {
						// Control points of a curve are off it; its knots are on it.
						if (op.kind == 'B' || op.kind == 'b') && (i/2)%3 != 0 {
							continue
						}
						pts = append(pts, [2]float64{op.points[i], op.points[i+1]})
					}
				case 'E', 'e':
					pts = append(pts, [2]float64{op.points[0] + op.points[2], op.points[1]})
				}
				if c, ok := parseColor(op.pen); !ok || isLight(c) {
					// The background: no outline.
					continue
				}
				if op.style == "dotted" {
					// A dotted line has gaps wider than the tolerance.
					continue
				}
				for _, p := range pts {
					checked++
					if !inkNear(p[0], p[1]) {
						t.Errorf("no ink at (%.1f, %.1f) of a %q operation", p[0], p[1], op.kind)
					}
				}
			}
			if checked < 10 {
				t.Errorf("only %d points checked", checked)
			}
		})
	}
}

// layoutOf returns the layout the PNG of a machine is drawn from.
func layoutOf(t *testing.T, s *spec.Spec, machine string) *drawing {
	t.Helper()
	m := s.Machine(machine)
	xdot, err := layout(t.Context(), m, Options{Lambdas: true}, "xdot")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseXDot(xdot)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSVGText checks that every label of the SVG is drawn in the label font's
// outlines and kept as invisible text in a font stack the layout fits.
func TestSVGText(t *testing.T) {
	for _, c := range imageCases {
		t.Run(filepath.Base(filepath.Dir(c.file))+"/"+c.machine, func(t *testing.T) {
			svg := string(renderBytes(t, loadFile(t, c.file), Options{Machine: c.machine, Lambdas: true, Format: FormatSVG}))
			texts := regexp.MustCompile(`<text [^>]*>`).FindAllString(svg, -1)
			if len(texts) == 0 {
				t.Fatal("no text")
			}
			for _, tag := range texts {
				if !strings.Contains(tag, `font-family="`+fontStack+`"`) || !strings.Contains(tag, `fill="none"`) {
					t.Errorf("text not invisible in the font stack: %s", tag)
				}
			}
			if got := strings.Count(svg, `<g fill="`); got < len(texts) {
				t.Errorf("%d outlined labels for %d texts", got, len(texts))
			}
			if !strings.Contains(svg, "<defs>") || !strings.Contains(svg, `<use xlink:href="#lfsm-glyph-`) {
				t.Error("no glyph definitions or uses")
			}
		})
	}
}

func isLight(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return (299*r+587*g+114*b)/1000 > 0xcccc
}

// TestImagesAwkwardNames draws names with quotes, backslashes and record
// characters: their text survives Graphviz's xdot and lfsm's reading of it.
func TestImagesAwkwardNames(t *testing.T) {
	m := awkward()
	s := &spec.Spec{Machines: []*spec.Machine{m}}
	d := layoutOf(t, s, m.Name)
	var texts []string
	for _, op := range d.ops {
		if op.kind == 'T' {
			texts = append(texts, op.text)
		}
	}
	for _, want := range []string{`say "hi"`, `back\slash`, `tail\`, "a{b}|c<d>", `local ev\ `, `λ3 quote"d`, `λ7 back\n`, `odd "machine"`} {
		if !slices.Contains(texts, want) {
			t.Errorf("layout has no text %q; texts: %q", want, texts)
		}
	}
	pngData := renderBytes(t, s, Options{Lambdas: true, Format: FormatPNG})
	if _, err := png.Decode(bytes.NewReader(pngData)); err != nil {
		t.Errorf("png does not decode: %v", err)
	}
	svg := renderBytes(t, s, Options{Lambdas: true, Format: FormatSVG})
	if !bytes.Contains(svg, []byte("lfsm-glyph-")) {
		t.Error("svg labels not outlined")
	}
}
