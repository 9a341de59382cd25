package graph

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

func TestRenderImages(t *testing.T) {
	s := loadSpec(t, "seed_example.yaml")
	t.Run("svg", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Render(t.Context(), &buf, s, Options{Format: FormatSVG, Lambdas: true}); err != nil {
			t.Fatal(err)
		}
		texts := svgTexts(t, buf.Bytes())
		for _, want := range []string{"FirstState", "entry/ path.to.Action1", "λ1", "λ2 done", "λ5"} {
			if !slices.Contains(texts, want) {
				t.Errorf("svg has no text %q; texts: %q", want, texts)
			}
		}
		// The pseudo nodes are bare circles: their names are not drawn.
		for _, name := range []string{string(lambdanum.Start), string(lambdanum.End)} {
			if slices.Contains(texts, name) {
				t.Errorf("svg draws the pseudo node name %q", name)
			}
		}
	})
	t.Run("png", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Render(t.Context(), &buf, s, Options{Format: FormatPNG, Machine: "Example"}); err != nil {
			t.Fatal(err)
		}
		if sig := []byte("\x89PNG\r\n\x1a\n"); !bytes.HasPrefix(buf.Bytes(), sig) {
			t.Errorf("png output starts with %q, want the PNG signature", buf.Bytes()[:min(8, buf.Len())])
		}
	})
}

func TestRenderErrors(t *testing.T) {
	two := loadSpec(t, "tests_integration_fsm.yaml")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		s     *spec.Spec
		opts  Options
		check func(error) bool
	}{
		{"svg of all machines", t.Context(), two, Options{Format: FormatSVG}, func(err error) bool {
			return errors.Is(err, ErrMachineNeeded) && strings.Contains(err.Error(), "-m")
		}},
		{"png of all machines", t.Context(), two, Options{Format: FormatPNG}, func(err error) bool {
			return errors.Is(err, ErrMachineNeeded)
		}},
		{"unknown machine", t.Context(), two, Options{Machine: "nope"}, func(err error) bool {
			var u *UnknownMachineError
			return errors.As(err, &u) && u.Name == "nope" && slices.Contains(u.Known, "looper")
		}},
		{"unknown format", t.Context(), two, Options{Format: "jpeg"}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), `"jpeg"`)
		}},
		{"no machines", t.Context(), &spec.Spec{}, Options{}, func(err error) bool { return err != nil }},
		{"cancelled", cancelled, two, Options{Format: FormatListing}, func(err error) bool {
			return errors.Is(err, context.Canceled)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Render(tt.ctx, &buf, tt.s, tt.opts)
			if !tt.check(err) {
				t.Errorf("Render error = %v", err)
			}
		})
	}
}

func TestRenderDefaultFormatIsDOT(t *testing.T) {
	s := loadSpec(t, "seed_example.yaml")
	var def, dot bytes.Buffer
	if err := Render(t.Context(), &def, s, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Render(t.Context(), &dot, s, Options{Format: FormatDOT}); err != nil {
		t.Fatal(err)
	}
	if def.String() != dot.String() || !strings.HasPrefix(def.String(), "digraph ") {
		t.Errorf("default format gave %q, want the dot output %q", def.String(), dot.String())
	}
}
