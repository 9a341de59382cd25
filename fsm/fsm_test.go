package fsm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
)

func TestContextInt(t *testing.T) {
	tests := []struct {
		name   string
		value  any
		want   int
		wantOK bool
	}{
		{"int", 3, 3, true},
		{"int64", int64(-4), -4, true},
		{"whole float64", float64(5), 5, true},
		{"negative whole float64", float64(-2), -2, true},
		{"fractional float64", 5.5, 0, false},
		{"json.Number integer", json.Number("42"), 42, true},
		{"json.Number fraction", json.Number("4.2"), 0, false},
		{"json.Number whole with a fraction part", json.Number("42.0"), 42, true},
		{"json.Number whole with an exponent", json.Number("4.2e1"), 42, true},
		{"json.Number beyond int64", json.Number("12345678901234567891"), 0, false},
		{"float64 beyond int64", 1e19, 0, false},
		{"json.Number not a number", json.Number("x"), 0, false},
		{"string", "3", 0, false},
		{"bool", true, 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fsm.NewContext(fsm.Facts{}, map[string]any{"k": tt.value}, nil)
			got, ok := c.Int("k")
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Errorf("Int(%#v) = %d, %v; want %d, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if n, ok := fsm.NewContext(fsm.Facts{}, nil, nil).Int("k"); ok || n != 0 {
			t.Errorf("Int of a missing key = %d, %v; want 0, false", n, ok)
		}
	})
	t.Run("decoded with UseNumber", func(t *testing.T) {
		dec := json.NewDecoder(bytesReader(`{"k": 7}`))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if n, ok := fsm.NewContext(fsm.Facts{}, m, nil).Int("k"); !ok || n != 7 {
			t.Errorf("Int = %d, %v; want 7, true", n, ok)
		}
	})
}

func TestContextFloatNumber(t *testing.T) {
	tests := []struct {
		value  any
		float  float64
		number json.Number
		ok     bool
	}{
		{json.Number("12345678901234567891"), 12345678901234567891, "12345678901234567891", true},
		{json.Number("1.0"), 1, "1.0", true},
		{json.Number("-2.5e-3"), -0.0025, "-2.5e-3", true},
		{3, 3, "3", true},
		{int64(-4), -4, "-4", true},
		{0.5, 0.5, "0.5", true},
		{1e21, 1e21, "1e+21", true},
		{"1", 0, "", false},
		{nil, 0, "", false},
	}
	for _, tt := range tests {
		c := fsm.NewContext(fsm.Facts{}, map[string]any{"k": tt.value}, nil)
		f, ok := c.Float("k")
		if ok != tt.ok || f != tt.float {
			t.Errorf("Float(%#v) = %v, %v; want %v, %v", tt.value, f, ok, tt.float, tt.ok)
		}
		n, ok := c.Number("k")
		if ok != tt.ok || n != tt.number {
			t.Errorf("Number(%#v) = %q, %v; want %q, %v", tt.value, n, ok, tt.number, tt.ok)
		}
	}
	if _, ok := fsm.NewContext(fsm.Facts{}, nil, nil).Float("missing"); ok {
		t.Error("Float of a missing key is ok")
	}
}

func TestContextDecode(t *testing.T) {
	type item struct {
		SKU string `json:"sku"`
		N   int    `json:"n"`
	}
	c := fsm.NewContext(fsm.Facts{}, map[string]any{
		"item":  map[string]any{"sku": "tea", "n": float64(2)},
		"wrong": "not an object",
	}, nil)

	var got item
	if err := c.Decode("item", &got); err != nil || got != (item{"tea", 2}) {
		t.Errorf("Decode(item) = %+v, %v; want {tea 2}, nil", got, err)
	}

	err := c.Decode("absent", &got)
	if !errors.Is(err, fsm.ErrMissingKey) {
		t.Errorf("Decode of a missing key: %v, want ErrMissingKey", err)
	}
	if err == nil || err.Error() != `decode "absent": key not in context` {
		t.Errorf("Decode of a missing key says %q", err)
	}

	err = c.Decode("wrong", &got)
	var ute *json.UnmarshalTypeError
	if !errors.As(err, &ute) || errors.Is(err, fsm.ErrMissingKey) {
		t.Errorf("Decode of a value of the wrong type: %v, want a *json.UnmarshalTypeError", err)
	}

	// A value Set in the same step decodes too.
	c.Set("fresh", item{"milk", 1})
	if err := c.Decode("fresh", &got); err != nil || got != (item{"milk", 1}) {
		t.Errorf("Decode(fresh) = %+v, %v", got, err)
	}
}

func TestPermanent(t *testing.T) {
	if err := fsm.Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
	base := errors.New("bad input")
	err := fsm.Permanent(base)
	if !fsm.IsPermanent(err) || !errors.Is(err, base) || err.Error() != "bad input" {
		t.Errorf("Permanent(base) = %v: IsPermanent %v, Is(base) %v", err, fsm.IsPermanent(err), errors.Is(err, base))
	}
	var pe *fsm.PermanentError
	if !errors.As(errorsJoinWrap(err), &pe) || pe.Err != base {
		t.Errorf("a wrapped permanent error is not found by errors.As")
	}
	if fsm.IsPermanent(base) || fsm.IsPermanent(nil) {
		t.Errorf("IsPermanent of a plain error or nil is true")
	}
}

func TestDelayLargestWins(t *testing.T) {
	tests := []struct {
		name   string
		delays []time.Duration
		want   time.Duration
	}{
		{"none", nil, 0},
		{"one", []time.Duration{time.Second}, time.Second},
		{"larger later", []time.Duration{time.Second, time.Minute}, time.Minute},
		{"larger first", []time.Duration{time.Minute, time.Second}, time.Minute},
		{"negative ignored", []time.Duration{-time.Minute}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fsm.NewContext(fsm.Facts{}, nil, nil)
			for _, d := range tt.delays {
				c.Delay(d)
			}
			if got := c.RequestedDelay(); got != tt.want {
				t.Errorf("RequestedDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLazyContext(t *testing.T) {
	decodes := 0
	decode := func(b []byte) (map[string]any, error) {
		decodes++
		var m map[string]any
		err := json.Unmarshal(b, &m)
		return m, err
	}
	c := fsm.NewLazyContext(fsm.Facts{}, []byte(`{"arg1": 1}`), decode, nil)
	if raw, ok := c.RawValues(); !ok || string(raw) != `{"arg1": 1}` || decodes != 0 {
		t.Fatalf("before use: RawValues = %q, %v; %d decodes", raw, ok, decodes)
	}
	if n, ok := c.Int("arg1"); !ok || n != 1 {
		t.Errorf("Int(arg1) = %d, %v", n, ok)
	}
	if _, ok := c.RawValues(); ok || decodes != 1 {
		t.Errorf("after use: the raw values are still passed on (%d decodes)", decodes)
	}

	bad := fsm.NewLazyContext(fsm.Facts{}, []byte(`{`), decode, nil)
	if _, ok := bad.Get("x"); ok || bad.LoadErr() == nil {
		t.Errorf("a context that does not decode: LoadErr %v", bad.LoadErr())
	}
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }

// errorsJoinWrap wraps err twice, as callers up the stack would.
func errorsJoinWrap(err error) error {
	return fmt.Errorf("step: %w", errors.Join(errors.New("context"), fmt.Errorf("charge: %w", err)))
}
