package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func intPtr(n int) *int    { return &n }
func boolPtr(b bool) *bool { return &b }

func TestDecodePythonMessage(t *testing.T) {
	tests := []struct {
		file string
		want Message
	}{
		{
			file: "testdata/python_message.json",
			want: Message{
				Version: "0.1",
				System: SystemContext{
					MachineName: "Example", CurrentState: "FirstState", CurrentEvent: "done",
					CorrelationID: "0f3c2b1a9e8d4c7b8a6f5e4d3c2b1a09", Steps: 1, Retries: 0, MaxRetries: intPtr(5),
					LeasePrimary: boolPtr(true),
				},
				User: map[string]any{"arg1": json.Number("1"), "mff": "..."},
			},
		},
		{
			file: "testdata/python_message_full.json",
			want: Message{
				Version: "0.1",
				System: SystemContext{
					MachineName: "Example", CurrentState: "SecondState", CurrentEvent: "done",
					CorrelationID: "8d2f6a0c5e1b4f3a9c7d2e1f0a9b8c7d", Steps: 2, Retries: 1, MaxRetries: intPtr(5),
					LeasePrimary: boolPtr(false), LeaseTimeout: 300, StartedAt: 1590000000, RestartedAt: 1590000100.5,
					Extra: map[string]json.RawMessage{
						"stream":       json.RawMessage(`"arn:aws:kinesis:us-east-1:123456789012:stream/fsm"`),
						"sentry_trace": json.RawMessage(`{"id": "x"}`),
					},
				},
				User:  map[string]any{"arg1": json.Number("1"), "mff": map[string]any{"nested": []any{json.Number("1"), json.Number("2"), "three"}}},
				Extra: map[string]json.RawMessage{"trace": json.RawMessage(`"kept"`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMessage(data)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeMessage mismatch (-want +got):\n%s", diff)
			}
			// Unknown keys survive a round trip.
			enc, err := EncodeMessage(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeMessage(enc)
			if err != nil {
				t.Fatalf("decode encoded: %v\n%s", err, enc)
			}
			if diff := cmp.Diff(got, again, cmp.Transformer("compact", compactRaw)); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

// compactRaw makes RawMessages comparable regardless of whitespace.
func compactRaw(r json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return "invalid:" + string(r)
	}
	return b.String()
}

func TestDecodeMessageErrors(t *testing.T) {
	sys := func(s string) string {
		return `{"version":"0.1","system_context":{` + s + `},"user_context":{}}`
	}
	const base = `"machine_name":"M","current_state":"S","current_event":"e","correlation_id":"c"`
	tests := []struct {
		name, in, want string
	}{
		{"not json", `{"version":`, "decode message: not JSON: invalid JSON: unexpected end of input"},
		{"trailing garbage", `{"version":"0.1"} x`, `decode message: not JSON: invalid JSON: invalid character after top-level value 'x' at offset 18`},
		{"array", `[1]`, "decode message: want a JSON object, got array"},
		{"missing version", `{"system_context":{}}`, "decode message: version: missing"},
		{"version not string", `{"version":1}`, "decode message: version: want a string, got number"},
		{"unsupported version", `{"version":"9"}`, `decode message: version: unsupported version "9" (want "0.1")`},
		{"missing system", `{"version":"0.1"}`, "decode message: system_context: missing"},
		{"system not object", `{"version":"0.1","system_context":[]}`, "decode message: system_context: want an object, got array"},
		{"steps string", sys(base + `,"steps":"1"`), "decode message: system_context.steps: want a non-negative integer, got string"},
		{"steps negative", sys(base + `,"steps":-1`), "decode message: system_context.steps: want a non-negative integer, got number"},
		{"steps fraction", sys(base + `,"steps":1.5`), "decode message: system_context.steps: want a non-negative integer, got number"},
		{"retries bool", sys(base + `,"retries":true`), "decode message: system_context.retries: want a non-negative integer, got boolean"},
		{"machine number", sys(`"machine_name":1`), "decode message: system_context.machine_name: want a string, got number"},
		{"missing machine", sys(`"current_state":"S"`), "decode message: system_context.machine_name: missing"},
		{"missing id", sys(`"machine_name":"M","current_state":"S","current_event":"e"`), "decode message: system_context.correlation_id: missing"},
		{"lease_primary string", sys(base + `,"lease_primary":"yes"`), "decode message: system_context.lease_primary: want a boolean, got string"},
		{"started_at string", sys(base + `,"started_at":"now"`), "decode message: system_context.started_at: want a non-negative number, got string"},
		{"user array", `{"version":"0.1","system_context":{` + base + `},"user_context":[]}`, "decode message: user_context: want an object, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeMessage(%s) succeeded, want error %q", tt.in, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error is %T, want *DecodeError", err)
			}
		})
	}
}

func TestDecodeMessageLenient(t *testing.T) {
	// Whole floats count as integers, null optional keys mean absent, a missing
	// user context is empty, escaped strings decode.
	in := `{"version":"0.1","system_context":{"machine_name":"M\u00e9","current_state":"S\"q","current_event":"e",` +
		`"correlation_id":"c","steps":2.0,"retries":0,"max_retries":null,"lease_primary":null}}`
	got, err := DecodeMessage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Version: "0.1", System: SystemContext{MachineName: "Mé", CurrentState: `S"q`, CurrentEvent: "e",
		CorrelationID: "c", Steps: 2}, User: map[string]any{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestEncodeMessage(t *testing.T) {
	m := Message{
		System: SystemContext{MachineName: "M", CurrentState: "S", CurrentEvent: "e<", CorrelationID: "c",
			Steps: 3, Retries: 1, MaxRetries: intPtr(0), AdditionalDelaySeconds: 1.5,
			StartedAt: UnixTimeOf(time.Unix(1590000000, 250_000_000)), RestartedAt: 1590000000.25,
			Extra: map[string]json.RawMessage{"zz": json.RawMessage(`1`), "aa": json.RawMessage(`[true]`), "steps": json.RawMessage(`99`)}},
		User: map[string]any{"b": 2, "a": "x"},
	}
	got, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":"0.1","system_context":{"machine_name":"M","current_state":"S","current_event":"e\u003c",` +
		`"correlation_id":"c","steps":3,"retries":1,"max_retries":0,"additional_delay_seconds":1.5,` +
		`"started_at":1590000000,"restarted_at":1590000000.25,"aa":[true],"zz":1},"user_context":{"a":"x","b":2}}`
	if string(got) != want {
		t.Errorf("EncodeMessage =\n%s\nwant\n%s", got, want)
	}
	if _, err := EncodeMessage(Message{User: map[string]any{"f": func() {}}}); err == nil {
		t.Error("EncodeMessage of a func value succeeded, want error")
	}
}

func TestNewCorrelationID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{32}$`)
	a, b := NewCorrelationID(), NewCorrelationID()
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Errorf("ids %q, %q: want two different 32-hex-char ids", a, b)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, file := range []string{"testdata/python_message.json", "testdata/python_message_full.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"version":"0.1","system_context":{"machine_name":"M","current_state":"S","current_event":"e","correlation_id":"c","steps":1e3}}`))
	f.Add([]byte(`{"version":"0.1","system_context":{"x":{"y":["}",{"\"":1}]},"machine_name":"\ud800"}}`))
	f.Add([]byte(`  {"version" : "0.1" , "system_context" : { } }  `))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode message: ") {
				t.Errorf("error %q lacks the decode message prefix", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("decoded invalid JSON %q", data)
		}
		enc, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("encode decoded message: %v", err)
		}
		again, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("decode re-encoded message: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(m, again, cmp.Transformer("compact", compactRaw)); diff != "" {
			t.Errorf("round trip mismatch (-first +second):\n%s", diff)
		}
		// The engine's lazy path (user context kept as JSON) agrees.
		lazy, raw, err := decodeMessage(data, nil, true)
		if err != nil {
			t.Fatalf("lazy decode failed where DecodeMessage succeeded: %v", err)
		}
		enc, err = appendMessage(nil, lazy, raw)
		if err != nil {
			t.Fatalf("encode lazily decoded message: %v", err)
		}
		viaLazy, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("decode lazily re-encoded message: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(m, viaLazy, cmp.Transformer("compact", compactRaw)); diff != "" {
			t.Errorf("lazy round trip mismatch (-eager +lazy):\n%s", diff)
		}
	})
}
