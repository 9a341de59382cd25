package engine

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `1e21`, `123456789012345678901234567890`,
	`{"a":[1,"x",{"b":null}],"c":true}`, `"\u00e9\n\ud800"`, "\"\xff\"", `[1,]`, `{"a" 1}`, `01`, `1.`, `1e`, `-`,
	`1e999`, `{"a":1}x`, ` [ 1 , 2 ] `, `"\x"`, `"\u12g4"`, `{"a":1,"a":2}`, `[[[[[]]]]]`, `nul`, `"abc`,
}

// FuzzParseJSON checks parseJSON and appendJSON against encoding/json.
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want any
		wantErr := json.Unmarshal(data, &want)
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
		var want any
		wantErr := json.Unmarshal([]byte(s), &want)
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
}
