package fsm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lfsm/lfsm/fsm"
)

// Greeter is an action with a dependency: a spec names a package-level
// variable holding one (var Greet fsm.Action = Greeter{Greeting: "hello"}).
type Greeter struct{ Greeting string }

// Execute stores a greeting for the context's "name" and moves on.
func (g Greeter) Execute(ctx context.Context, c *fsm.Context) (string, error) {
	name, ok := c.String("name")
	if !ok {
		return "", fsm.Permanent(errors.New("context has no name"))
	}
	c.Set("greeting", g.Greeting+", "+name)
	return "greeted", nil
}

// A type whose value has the Execute method is an action.
func ExampleAction() {
	var a fsm.Action = Greeter{Greeting: "hello"}
	c := fsm.NewContext(fsm.Facts{Machine: "Hello", State: "Greeting", Kind: fsm.KindDo},
		map[string]any{"name": "Ada"}, nil)
	event, err := a.Execute(context.Background(), c)
	greeting, _ := c.String("greeting")
	fmt.Println(event, err)
	fmt.Println(greeting)
	// Output:
	// greeted <nil>
	// hello, Ada
}

// A function with the action signature becomes an action through
// ActionFunc; a spec can name the function itself.
func ExampleActionFunc() {
	double := func(ctx context.Context, c *fsm.Context) (string, error) {
		n, ok := c.Int("n")
		if !ok {
			return "", fsm.Permanent(errors.New("context has no integer n"))
		}
		c.Set("n", 2*n)
		return "doubled", nil
	}
	var a fsm.Action = fsm.ActionFunc(double)
	c := fsm.NewContext(fsm.Facts{}, map[string]any{"n": 21}, nil)
	event, err := a.Execute(context.Background(), c)
	n, _ := c.Int("n")
	fmt.Println(event, err, n)
	// Output: doubled <nil> 42
}

// Decode reads a value an earlier step stored (as JSON, so a map) into a
// struct.
func ExampleContext_Decode() {
	type Order struct {
		SKU   string `json:"sku"`
		Count int    `json:"count"`
	}
	// As the context arrives after a step boundary: decoded from JSON.
	c := fsm.NewContext(fsm.Facts{}, map[string]any{
		"order": map[string]any{"sku": "tea", "count": float64(3)},
	}, nil)
	var o Order
	if err := c.Decode("order", &o); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", o)

	err := c.Decode("invoice", &o)
	fmt.Println(err, errors.Is(err, fsm.ErrMissingKey))
	// Output:
	// {SKU:tea Count:3}
	// decode "invoice": key not in context true
}

// Set stores a value for later actions and steps; Get returns it as stored
// (after a step boundary, as decoded from JSON).
func ExampleContext_Set() {
	c := fsm.NewContext(fsm.Facts{}, nil, nil)
	c.Set("mff", "fancy(1)")
	v, ok := c.Get("mff")
	fmt.Println(v, ok)
	_, ok = c.Get("missing")
	fmt.Println(ok)
	fmt.Println(c.Keys())
	// Output:
	// fancy(1) true
	// false
	// [mff]
}

// Get returns values as JSON decoded them: numbers are json.Number, which
// keeps the literal the producer wrote.
func ExampleContext_Get() {
	raw := []byte(`{"id": 12345678901234567891, "price": 1.0, "tags": ["a", "b"]}`)
	c := fsm.NewLazyContext(fsm.Facts{}, raw, func(b []byte) (map[string]any, error) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // as the engine decodes
		var m map[string]any
		return m, dec.Decode(&m)
	}, nil)
	v, _ := c.Get("id")
	fmt.Printf("%T %v\n", v, v)
	price, _ := c.Float("price")
	literal, _ := c.Number("price")
	fmt.Println(price, literal)
	tags, _ := c.Get("tags")
	fmt.Println(tags)
	// Output:
	// json.Number 12345678901234567891
	// 1 1.0
	// [a b]
}

// Int reads whole numbers however they were stored: an int set by an
// action, or a json.Number decoded from JSON (1.0 included).
func ExampleContext_Int() {
	c := fsm.NewContext(fsm.Facts{}, map[string]any{"set": 7, "decoded": json.Number("1.0"), "half": json.Number("1.5"), "text": "1"}, nil)
	for _, k := range []string{"set", "decoded", "half", "text", "missing"} {
		n, ok := c.Int(k)
		fmt.Println(k, n, ok)
	}
	// Output:
	// set 7 true
	// decoded 1 true
	// half 0 false
	// text 0 false
	// missing 0 false
}

// Delay postpones the next message: a timer. The largest request of a step
// wins.
func ExampleContext_Delay() {
	c := fsm.NewContext(fsm.Facts{}, nil, nil)
	c.Delay(time.Minute)
	c.Delay(10 * time.Second)
	fmt.Println(c.RequestedDelay())
	// Output: 1m0s
}

// Permanent marks an error that retrying cannot fix: the execution fails at
// once instead of being retried up to max_retries.
func ExamplePermanent() {
	err := fsm.Permanent(fmt.Errorf("order %q: %w", "o-1", errors.New("no such customer")))
	fmt.Println(err)
	fmt.Println(fsm.IsPermanent(err), fsm.IsPermanent(fmt.Errorf("charge: %w", err)))
	fmt.Println(fsm.IsPermanent(errors.New("timeout")), fsm.Permanent(nil) == nil)
	// Output:
	// order "o-1": no such customer
	// true true
	// false true
}

// NewContext is how to unit-test an action: no engine, no store. Give it the
// facts the action reads and the context it expects, then check the event,
// the error and what the action stored.
func ExampleNewContext() {
	action2 := func(ctx context.Context, c *fsm.Context) (string, error) {
		arg1, ok := c.Int("arg1")
		if !ok {
			return "", fsm.Permanent(errors.New("context has no integer arg1"))
		}
		c.Set("mff", fmt.Sprintf("fancy(%d)", arg1))
		return "done", nil
	}
	facts := fsm.Facts{Machine: "Example", State: "FirstState", Kind: fsm.KindDo}

	c := fsm.NewContext(facts, map[string]any{"arg1": float64(2)}, nil)
	event, err := action2(context.Background(), c)
	mff, _ := c.String("mff")
	fmt.Println(event, err, mff)

	_, err = action2(context.Background(), fsm.NewContext(facts, nil, nil))
	fmt.Println(fsm.IsPermanent(err), err)
	// Output:
	// done <nil> fancy(2)
	// true context has no integer arg1
}
