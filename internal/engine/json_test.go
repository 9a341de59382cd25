package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `1e21`, `123456789012345678901234567890`,
	`12345678901234567891`, `1.0`, `-0.0e+00`, `[1.10, 1E5, 5e-324, 1e-400]`, `NaN`, `-Infinity`, `{"x":Infinity}`,
	`{"a":[1,"x",{"b":null}],"c":true}`, `"\u00e9\n\ud800"`, "\"\xff\"", `[1,]`, `{"a" 1}`, `01`, `1.`, `1e`, `-`,
	`1e999`, `{"a":1}x`, ` [ 1 , 2 ] `, `"\x"`, `"\u12g4"`, `{"a":1,"a":2}`, `[[[[[]]]]]`, `nul`, `"abc`,
}

// stdDecode decodes data as a json.Decoder with UseNumber does (numbers as
// json.Number, keeping their literals), refusing anything after the value
// as json.Unmarshal does.
func stdDecode(data []byte) (any, error) {
	if !json.Valid(data) {
		var v any
		return nil, json.Unmarshal(data, &v) // the syntax error
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// FuzzParseJSON checks parseJSON and appendJSON against encoding/json
// (decoding with UseNumber): the same values, numbers as their literals, and
// the same errors; what appendJSON writes is what json.Marshal writes, so a
// number read is written back exactly as it came.
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := stdDecode(data)
		got, err := parseJSON(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("parseJSON(%q) error %v, encoding/json error %v", data, err, wantErr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("parseJSON(%q) mismatch (-encoding/json +parseJSON):\n%s", data, diff)
		}
		enc, err := appendJSON(nil, got)
		if err != nil {
			t.Fatalf("appendJSON: %v", err)
		}
		std, _ := json.Marshal(got)
		if string(enc) != string(std) {
			t.Fatalf("appendJSON = %s, encoding/json = %s", enc, std)
		}
	})
}

func TestParseJSONSeeds(t *testing.T) {
	for _, s := range jsonSeeds {
		want, wantErr := stdDecode([]byte(s))
		got, err := parseJSON([]byte(s))
		if (err != nil) != (wantErr != nil) || (err == nil && !cmp.Equal(want, got)) {
			t.Errorf("parseJSON(%s) = %v, %v; encoding/json %v, %v", s, got, err, want, wantErr)
		}
	}
}

func TestAppendJSONScalars(t *testing.T) {
	type custom struct {
		A int `json:"a"`
	}
	tests := []struct {
		in   any
		want string
	}{
		{map[string]any{"z": 1, "a": int64(2), "m": []any{custom{3}, nil, "<"}}, `{"a":2,"m":[{"a":3},null,"\u003c"],"z":1}`},
		{1e-7, `1e-7`},
		{1e21, `1e+21`},
		{-0.5, `-0.5`},
		{json.Number("12345678901234567891"), `12345678901234567891`},
		{[]any{json.Number("1.0"), json.Number("")}, `[1.0,0]`},
	}
	for _, tt := range tests {
		got, err := appendJSON(nil, tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("appendJSON(%v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := appendJSON(nil, math.NaN()); err == nil {
		t.Error("appendJSON(NaN) succeeded")
	}
	for _, n := range []json.Number{"NaN", "1.", "01", "1 ", "0x1", "+1"} {
		if _, err := appendJSON(nil, n); err == nil {
			t.Errorf("appendJSON(json.Number(%q)) succeeded", n)
		}
		if _, err := json.Marshal(n); err == nil {
			t.Errorf("json.Marshal(json.Number(%q)) succeeded: the case does not match encoding/json", n)
		}
	}
}
