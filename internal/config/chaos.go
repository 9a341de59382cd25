package config

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/lfsm/lfsm/internal/backend/chaos"
)

// ChaosDefault is the key of a chaos setting that applies to every operation
// not named on its own.
const ChaosDefault = "default"

// Chaos is the chaos setting: the probability (0 never, 1 always) that a call
// of the local store fails on purpose, by default and per operation of
// internal/backend/chaos (Commit, Receive, ...). The zero Chaos is off.
//
// It is written either as a SPEC string, "0.1" (the default alone) or
// "default=0.1,Commit=0.5" (flag --chaos, LFSM_CHAOS), or in lfsm.yaml as a
// map ({default: 0.1, Commit: 0.5}); both go through the same parser.
// *Chaos is a pflag.Value.
type Chaos struct {
	Default float64
	// Ops overrides Default per operation, keyed by chaos.Ops names.
	Ops map[string]float64
}

// ChaosKeys lists the keys a chaos setting may hold: default, then the
// operation names. Each operation may also be keyed for one backend,
// BACKEND.Operation (dynamodb.Acquire, kinesis.Send: chaos.Backends), which
// wins over the bare operation for that backend's calls.
func ChaosKeys() []string { return append([]string{ChaosDefault}, chaos.AllOps()...) }

// ChaosError is a bad chaos setting: Key (and Value) say which entry.
type ChaosError struct {
	Key, Value string
	Reason     string
}

// Error names the entry and the reason.
func (e *ChaosError) Error() string {
	switch {
	case e.Key == "":
		return fmt.Sprintf("chaos %q: %s", e.Value, e.Reason)
	case e.Value == "":
		return fmt.Sprintf("chaos key %q: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("chaos %s=%s: %s", e.Key, e.Value, e.Reason)
}

// ParseChaos parses a SPEC: "" (off), "P" (the default probability) or
// comma-separated KEY=P entries whose keys are ChaosKeys. Every problem is
// reported, with the bad key or value and the valid ones.
func ParseChaos(s string) (Chaos, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Chaos{}, nil
	}
	if !strings.Contains(s, "=") && !strings.Contains(s, ",") {
		p, err := parseProbability(ChaosDefault, s)
		return Chaos{Default: p}, err
	}
	var entries [][2]string
	var errs []error
	for _, e := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok {
			errs = append(errs, &ChaosError{Value: e, Reason: "want KEY=PROBABILITY (as in default=0.1,Commit=0.5)"})
			continue
		}
		entries = append(entries, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	c, err := chaosFromEntries(entries)
	errs = append(errs, err)
	return c, joinErrs(errs)
}

// ChaosFromSetting reads the chaos value of lfsm.yaml: a map of keys to
// probabilities, or a SPEC string or number.
func ChaosFromSetting(v any) (Chaos, error) {
	switch v := v.(type) {
	case nil:
		return Chaos{}, nil
	case string:
		return ParseChaos(v)
	case int, float64:
		return ParseChaos(fmt.Sprint(v))
	case map[string]any:
		entries := make([][2]string, 0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			entries = append(entries, [2]string{k, fmt.Sprint(v[k])})
		}
		return chaosFromEntries(entries)
	}
	return Chaos{}, &ChaosError{Value: fmt.Sprint(v), Reason: "want a map of operation to probability, as in {default: 0.1, Commit: 0.5}"}
}

func chaosFromEntries(entries [][2]string) (Chaos, error) {
	c := Chaos{}
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		k, v := e[0], e[1]
		if !validChaosKey(k) {
			errs = append(errs, &ChaosError{Key: k, Reason: unknownKeyReason(k)})
			continue
		}
		if seen[k] {
			errs = append(errs, &ChaosError{Key: k, Reason: "given twice"})
			continue
		}
		seen[k] = true
		p, err := parseProbability(k, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if k == ChaosDefault {
			c.Default = p
		} else {
			if c.Ops == nil {
				c.Ops = map[string]float64{}
			}
			c.Ops[k] = p
		}
	}
	if err := joinErrs(errs); err != nil {
		return Chaos{}, err
	}
	return c, nil
}

// validChaosKey reports whether k is a ChaosKeys key or an operation of a
// named backend (dynamodb.Acquire).
func validChaosKey(k string) bool {
	if slices.Contains(ChaosKeys(), k) {
		return true
	}
	b, op, ok := strings.Cut(k, ".")
	return ok && slices.Contains(chaos.BackendOps()[b], op)
}

// unknownKeyReason says why k is not a chaos key, with the valid ones: a
// backend's operations for BACKEND.Operation of a known backend, else the
// backends, else the bare keys.
func unknownKeyReason(k string) string {
	if b, op, ok := strings.Cut(k, "."); ok {
		ops, known := chaos.BackendOps()[b]
		if !known {
			return "unknown operation; in BACKEND.Operation the backend is one of " + strings.Join(chaos.Backends(), ", ")
		}
		if i := slices.IndexFunc(ops, func(n string) bool { return strings.EqualFold(n, op) }); i >= 0 {
			return fmt.Sprintf("unknown operation; did you mean %q? (keys are case-sensitive)", b+"."+ops[i])
		}
		return fmt.Sprintf("unknown operation; %s's operations are %s", b, strings.Join(ops, ", "))
	}
	if i := slices.IndexFunc(ChaosKeys(), func(n string) bool { return strings.EqualFold(n, k) }); i >= 0 {
		return fmt.Sprintf("unknown operation; did you mean %q? (keys are case-sensitive: %s)", ChaosKeys()[i], strings.Join(ChaosKeys(), ", "))
	}
	return "unknown operation; valid keys are " + strings.Join(ChaosKeys(), ", ") +
		", each also as BACKEND.Operation (dynamodb.Acquire) for a backend of " + strings.Join(chaos.Backends(), ", ")
}

func parseProbability(key, v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil:
		return 0, &ChaosError{Key: key, Value: v, Reason: "not a number; want a probability from 0 to 1"}
	case p < 0 || p > 1 || p != p:
		return 0, &ChaosError{Key: key, Value: v, Reason: "out of range; want a probability from 0 to 1"}
	}
	return p, nil
}

// joinErrs joins errs (nils skipped) as "; "-separated text on one line.
func joinErrs(errs []error) error {
	var msgs []string
	var first error
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
			if first == nil {
				first = err
			}
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		return first
	}
	return fmt.Errorf("%w; %s", first, strings.Join(msgs[1:], "; "))
}

// Enabled reports whether any call may fail.
func (c Chaos) Enabled() bool {
	if c.Default > 0 {
		return true
	}
	for _, p := range c.Ops {
		if p > 0 {
			return true
		}
	}
	return false
}

// String is the canonical SPEC of c, which ParseChaos reads back: default
// first, then operations sorted; "" when c is the zero Chaos.
func (c Chaos) String() string {
	var parts []string
	if c.Default != 0 {
		parts = append(parts, ChaosDefault+"="+formatP(c.Default))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Ops)) {
		parts = append(parts, k+"="+formatP(c.Ops[k]))
	}
	return strings.Join(parts, ",")
}

func formatP(p float64) string { return strconv.FormatFloat(p, 'g', -1, 64) }

// Set parses s into c (pflag.Value).
func (c *Chaos) Set(s string) error {
	v, err := ParseChaos(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Type names the flag's value in help (pflag.Value).
func (c *Chaos) Type() string { return "SPEC" }

// Config returns the chaos.Config of c, drawing failures from a source
// seeded with seed.
func (c Chaos) Config(seed uint64) chaos.Config {
	return chaos.Config{Default: c.Default, Ops: maps.Clone(c.Ops), Rand: rand.New(rand.NewPCG(seed, seed))}
}

// MarshalText writes the canonical SPEC, so that Config renders as JSON.
func (c Chaos) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Notice is the one line a command prints on stderr while chaos is on, so
// that nobody forgets it is.
func (c Chaos) Notice(seed uint64) string { return c.NoticeFor("the local store", seed) }

// NoticeFor is Notice for calls to what ("the AWS backends").
func (c Chaos) NoticeFor(what string, seed uint64) string {
	return fmt.Sprintf("chaos: on, calls to %s fail at random (%s; --chaos-seed %d repeats the draws)", what, c, seed)
}
