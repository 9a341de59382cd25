// Package awsconfig loads the AWS SDK configuration every AWS backend uses and
// meters the calls they make.
//
// Credentials and endpoints come from the SDK's standard chain only (profiles,
// environment, instance roles; AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>
// for emulators): lfsm keeps no endpoint map of its own. The region is the one
// of the resource a client talks to, taken from its ARN, because secondaries
// often live in another region than the default one.
package awsconfig

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/middleware"
)

// Load returns the SDK's default configuration with its region replaced by
// region when that is not empty, and m's middleware attached when m is not nil.
func Load(ctx context.Context, region string, m *Meter) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if m != nil {
		m.Attach(&cfg)
	}
	return cfg, nil
}

// Meter counts the calls made through the clients it is attached to, per
// service and operation, and the DynamoDB capacity units they report as
// consumed (requests must ask with ReturnConsumedCapacity: the DynamoDB store
// always does). The benchmarks and the cost model in docs/benchmarks.md read
// it. A nil *Meter is a valid meter that counts nothing.
type Meter struct {
	mu  sync.Mutex
	ops map[string]*OpUsage
}

// OpUsage is what one operation (e.g. "DynamoDB.UpdateItem") cost.
type OpUsage struct {
	Calls int64 `json:"calls"`
	// Errors counts calls that returned an error (they are in Calls too).
	Errors int64 `json:"errors"`
	// ReadUnits and WriteUnits are DynamoDB's consumed capacity, summed over
	// tables and indexes; CapacityUnits where the service reported only a total.
	ReadUnits     float64 `json:"read_units"`
	WriteUnits    float64 `json:"write_units"`
	CapacityUnits float64 `json:"capacity_units"`
}

// Attach adds the meter's middleware to cfg's API options, so every client
// built from cfg afterwards is metered.
func (m *Meter) Attach(cfg *aws.Config) {
	if m == nil {
		return
	}
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("lfsmMeter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				m.record(awsmw.GetServiceID(ctx)+"."+awsmw.GetOperationName(ctx), out.Result, err)
				return out, md, err
			}), middleware.After)
	})
}

func (m *Meter) record(op string, result any, err error) {
	r, w, c := consumed(result)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ops == nil {
		m.ops = map[string]*OpUsage{}
	}
	u := m.ops[op]
	if u == nil {
		u = &OpUsage{}
		m.ops[op] = u
	}
	u.Calls++
	if err != nil {
		u.Errors++
	}
	u.ReadUnits += r
	u.WriteUnits += w
	u.CapacityUnits += c
}

// Usage returns a copy of the counts so far, by operation.
func (m *Meter) Usage() map[string]OpUsage {
	out := map[string]OpUsage{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.ops {
		out[k] = *v
	}
	return out
}

// Calls returns the total number of calls so far.
func (m *Meter) Calls() int64 {
	var n int64
	for _, u := range m.Usage() {
		n += u.Calls
	}
	return n
}

// Ops returns the metered operation names, sorted.
func (m *Meter) Ops() []string {
	u := m.Usage()
	names := make([]string, 0, len(u))
	for k := range u {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Reset forgets every count.
func (m *Meter) Reset() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.ops = nil
	m.mu.Unlock()
}

// consumed reads a DynamoDB output's ConsumedCapacity field (one value or a
// slice of them) by reflection, so that this package needs no service module.
func consumed(result any) (read, write, total float64) {
	v := reflect.ValueOf(result)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return 0, 0, 0
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, 0, 0
	}
	f := v.FieldByName("ConsumedCapacity")
	if !f.IsValid() {
		return 0, 0, 0
	}
	add := func(c reflect.Value) {
		if c.Kind() == reflect.Pointer {
			if c.IsNil() {
				return
			}
			c = c.Elem()
		}
		r, w, t := num(c, "ReadCapacityUnits"), num(c, "WriteCapacityUnits"), num(c, "CapacityUnits")
		read += r
		write += w
		if r == 0 && w == 0 {
			total += t
		}
	}
	if f.Kind() == reflect.Slice {
		for i := range f.Len() {
			add(f.Index(i))
		}
	} else {
		add(f)
	}
	return read, write, total
}

func num(v reflect.Value, name string) float64 {
	f := v.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return 0
	}
	return f.Elem().Float()
}
