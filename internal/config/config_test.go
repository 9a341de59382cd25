package config

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseLambdaARN(t *testing.T) {
	tests := []struct {
		in      string
		want    LambdaARN
		wantErr string // substring of the reason; empty means success
	}{
		{in: "arn:aws:lambda:us-east-1:123456789012:function:orders",
			want: LambdaARN{Partition: "aws", Region: "us-east-1", Account: "123456789012", Function: "orders"}},
		{in: "arn:aws-cn:lambda:cn-north-1:123456789012:function:my_fn-2:live",
			want: LambdaARN{Partition: "aws-cn", Region: "cn-north-1", Account: "123456789012", Function: "my_fn-2", Qualifier: "live"}},
		{in: "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST",
			want: LambdaARN{Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "123456789012", Function: "f", Qualifier: "$LATEST"}},
		{in: "orders", wantErr: "not of the form"},
		{in: "arn:aws:lambda:us-east-1:123456789012:function", wantErr: "not of the form"},
		{in: "arn:gcp:lambda:us-east-1:123456789012:function:f", wantErr: `bad partition "gcp"`},
		{in: "arn:aws:sqs:us-east-1:123456789012:function:f", wantErr: `service is "sqs"`},
		{in: "arn:aws:lambda:useast1:123456789012:function:f", wantErr: `bad region "useast1"`},
		{in: "arn:aws:lambda:us-east-1:1234:function:f", wantErr: "not 12 digits"},
		{in: "arn:aws:lambda:us-east-1:123456789012:layer:f", wantErr: `resource type is "layer"`},
		{in: "arn:aws:lambda:us-east-1:123456789012:function:a.b", wantErr: `bad function name "a.b"`},
		{in: "arn:aws:lambda:us-east-1:123456789012:function:f:a:b", wantErr: "not of the form"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLambdaARN(tt.in)
			if tt.wantErr != "" {
				var ae *ARNError
				if !errors.As(err, &ae) || !strings.Contains(ae.Reason, tt.wantErr) {
					t.Fatalf("ParseLambdaARN(%q) error = %v, want an ARNError with %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLambdaARN(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLambdaARN(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for _, s := range []string{"local", "aws"} {
		if got, err := ParseTarget(s); err != nil || string(got) != s {
			t.Errorf("ParseTarget(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseTarget("gcp"); err == nil || !strings.Contains(err.Error(), "local, aws") {
		t.Errorf("ParseTarget(gcp) error = %v, want one naming the allowed targets", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // substrings of the error, all must appear; none means valid
	}{
		{name: "default", c: Default()},
		{name: "bad target and arn", c: Config{Target: "gcp", LambdaARN: "nope"},
			want: []string{`unknown target "gcp"`, `invalid Lambda function ARN "nope"`}},
		{name: "bad secondary region", c: Config{Metrics: Metrics{SecondaryRegion: "westeros"}},
			want: []string{`metrics.secondary-region: region "westeros": want a region name such as us-west-2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestChaos(t *testing.T) {
	tests := []struct {
		name    string
		flag    string // SPEC, as --chaos and LFSM_CHAOS give it
		file    any    // the chaos value of lfsm.yaml, as YAML decodes it
		want    string // canonical String of the result
		wantErr []string
	}{
		{name: "off", flag: "", want: ""},
		{name: "default only", flag: "0.1", file: 0.1, want: "default=0.1"},
		{name: "per op", flag: "default=0.1,Commit=0.5", file: map[string]any{"default": 0.1, "Commit": 0.5},
			want: "default=0.1,Commit=0.5"},
		{name: "bounds", flag: "Receive=0, Ack=1", file: map[string]any{"Receive": 0, "Ack": 1}, want: "Ack=1,Receive=0"},
		{name: "spec string in file", flag: "Send=0.25", file: "Send=0.25", want: "Send=0.25"},
		{name: "out of range", flag: "1.5", file: 1.5, wantErr: []string{"chaos default=1.5: out of range"}},
		{name: "negative", flag: "Commit=-0.1", file: map[string]any{"Commit": -0.1}, wantErr: []string{"chaos Commit=-0.1: out of range"}},
		{name: "not a number", flag: "Commit=lots", file: map[string]any{"Commit": "lots"}, wantErr: []string{"chaos Commit=lots: not a number"}},
		{name: "unknown op lists valid keys", flag: "Comit=0.5", file: map[string]any{"Comit": 0.5},
			wantErr: []string{`chaos key "Comit": unknown operation`, "default, Ack, Acquire, ChangeVisibility, Commit, CommitStep, CommitSteps, Create,"}},
		{name: "wrong case", flag: "commit=0.5", file: map[string]any{"commit": 0.5}, wantErr: []string{`did you mean "Commit"?`}},
		{name: "every problem", flag: "Comit=0.5,Send=2", file: map[string]any{"Comit": 0.5, "Send": 2},
			wantErr: []string{`"Comit"`, "Send=2: out of range"}},
		{name: "per backend", flag: "dynamodb.Acquire=0.2,kinesis.Send=0.1", file: map[string]any{"dynamodb.Acquire": 0.2, "kinesis.Send": 0.1},
			want: "dynamodb.Acquire=0.2,kinesis.Send=0.1"},
		{name: "unknown backend", flag: "dynamo.Acquire=0.2", file: map[string]any{"dynamo.Acquire": 0.2},
			wantErr: []string{`chaos key "dynamo.Acquire": unknown operation`, "the backend is one of cloudwatch, dynamodb, kinesis"}},
		{name: "unknown backend operation", flag: "sqs.Sned=0.2", file: map[string]any{"sqs.Sned": 0.2},
			wantErr: []string{`chaos key "sqs.Sned": unknown operation; sqs's operations are Ack, ChangeVisibility, Receive, ScheduleRetry, Send, SendBatch`}},
		{name: "operation another backend has", flag: "kinesis.Acquire=0.2", file: map[string]any{"kinesis.Acquire": 0.2},
			wantErr: []string{`chaos key "kinesis.Acquire": unknown operation; kinesis's operations are Receive, Send, SendBatch`}},
		{name: "no equals", flag: "Commit=0.5,Send", file: []any{"Send"}, wantErr: []string{"want "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, src := range []string{"flag", "file"} {
				var got Chaos
				var err error
				if src == "flag" {
					got, err = ParseChaos(tt.flag)
				} else {
					got, err = ChaosFromSetting(tt.file)
				}
				if len(tt.wantErr) > 0 {
					var ce *ChaosError
					if !errors.As(err, &ce) {
						t.Fatalf("%s: error = %v, want a ChaosError", src, err)
					}
					for _, w := range tt.wantErr {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s: error = %q, want it to contain %q", src, err, w)
						}
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				if got.String() != tt.want {
					t.Errorf("%s: got %q, want %q", src, got, tt.want)
				}
				if back, err := ParseChaos(got.String()); err != nil || back.String() != tt.want {
					t.Errorf("%s: String does not parse back: %q, %v", src, back, err)
				}
			}
		})
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "1.5d": 36 * time.Hour, "90m": 90 * time.Minute, "720h": 720 * time.Hour} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1h", "d", "xd", "30", "1e9d", "NaNd"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) succeeded, want an error", in)
		}
	}
}

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		format  string
		verbose bool
		want    string // what a warn and an info record print, "" for nothing
	}{
		{"", false, ""},
		{"", true, `level=WARN msg=w` + "\n" + `level=INFO msg=i`},
		{"text", false, `level=WARN msg=w`},
		{"json", false, `{"level":"WARN","msg":"w"}`},
		{"json", true, `{"level":"WARN","msg":"w"}` + "\n" + `{"level":"INFO","msg":"i"}`},
	} {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, tc.format, tc.verbose)
		if err != nil {
			t.Fatal(err)
		}
		l.Warn("w")
		l.Info("i")
		got := regexp.MustCompile(`time=\S+ |"time":"[^"]+",`).ReplaceAllString(strings.TrimSpace(buf.String()), "")
		if got != tc.want {
			t.Errorf("NewLogger(%q, %v) printed %q, want %q", tc.format, tc.verbose, got, tc.want)
		}
	}
	if _, err := NewLogger(io.Discard, "yaml", false); err == nil || !strings.Contains(err.Error(), "text, json") {
		t.Errorf("NewLogger(yaml) = %v, want an error listing text, json", err)
	}
}
