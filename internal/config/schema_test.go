package config

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compiled(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("lfsm.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("lfsm.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

func instance(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaCoversKeys: every key the settings loader accepts is in the
// editor schema, and the schema names no other.
func TestSchemaCoversKeys(t *testing.T) {
	type node struct {
		Properties map[string]*node `json:"properties"`
	}
	var doc node
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatal(err)
	}
	// The top-level keys (sections too, as Keys lists aws) and every
	// nested leaf (aws.vpc.subnets; not the section aws.vpc).
	var got []string
	var walk func(prefix string, n *node)
	walk = func(prefix string, n *node) {
		for k, v := range n.Properties {
			key := prefix + k
			if prefix == "" || len(v.Properties) == 0 {
				got = append(got, key)
			}
			walk(key+".", v)
		}
	}
	walk("", &doc)
	slices.Sort(got)
	want := append(append(Keys(), AWSKeys()...), MetricsKeys()...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("schema keys %v, settings keys %v", got, want)
	}
}

func TestSchemaValidates(t *testing.T) {
	s := compiled(t)
	good := `
file: specs/orders.yaml
machine: Orders
target: aws
output: json
lambda-arn: arn:aws:lambda:us-east-1:123456789012:function:orders
db: .lfsm/lfsm.db
chaos: {default: 0.1, Commit: 0.5}
chaos-seed: 1
retention: 30d
metrics: {cloudwatch: true, namespace: orders/prod, secondary-region: us-west-2}
aws:
  stack: orders-prod
  dispatch: sqs
  dispatch-arn: arn:aws:sqs:eu-west-1:123456789012:orders-dispatch
  store-table-arn: arn:aws:dynamodb:eu-west-1:123456789012:table/orders-executions
  retention: 30d
`
	if err := s.Validate(instance(t, good)); err != nil {
		t.Errorf("valid settings rejected: %v", err)
	}
	for _, bad := range []string{
		"target: gcp",
		"aws: {stak: x}",
		"aws: {dispatch: pigeon}",
		"aws: {retention: soon}",
		"aws: {store-table-arn: orders}",
		"chaos: {default: 2}",
		"unknown: 1",
		"metrics: {cloudwatch: yes-please}",
		"metrics: {namespace: AWS/Lambda}",
		"metrics: {namspace: orders}",
		"metrics: {secondary-region: westeros}",
	} {
		if err := s.Validate(instance(t, bad)); err == nil {
			t.Errorf("schema accepts %q", strings.TrimSpace(bad))
		}
	}
}
