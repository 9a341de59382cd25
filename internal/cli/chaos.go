package cli

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/config"
)

// chaosFlags are the --chaos and --chaos-seed flags of run and dev.
type chaosFlags struct {
	Spec    config.Chaos
	Seed    uint64
	seedSet bool
}

func addChaosFlags(cmd *cobra.Command, c *chaosFlags) {
	fl := cmd.Flags()
	fl.Var(&c.Spec, "chaos", "make calls to the store fail at random: a probability for every call (0.1) or per operation (default=0.1,Commit=0.5; with --target aws per backend too: dynamodb.Acquire=0.2,kinesis.Send=0.1)")
	fl.Uint64Var(&c.Seed, "chaos-seed", 0, "with --chaos: seed of the failure draws, to repeat a run (default: random, printed)")
}

// check returns a usage error for --chaos-seed without chaos, or for a key
// that names no operation of the target's backends (aws: the AWS backends
// by name; local: the store, whose operations are bare), and picks a random
// seed when none was given.
func (c *chaosFlags) check(cmd *cobra.Command, aws bool) error {
	c.seedSet = cmd.Flags().Changed("chaos-seed")
	if !c.Spec.Enabled() {
		if c.seedSet {
			return usageErrorf("--chaos-seed needs --chaos (or chaos in lfsm.yaml, or LFSM_CHAOS)")
		}
		return nil
	}
	if aws {
		if err := chaos.CheckKeys(c.Spec.Ops, chaos.AWSBackends()); err != nil {
			return usageErrorf("invalid --chaos for --target aws: %w", err)
		}
	} else {
		for _, k := range slices.Sorted(maps.Keys(c.Spec.Ops)) {
			if strings.Contains(k, ".") {
				return usageErrorf("invalid --chaos %s: keys by backend (BACKEND.Operation) apply with --target aws; locally every call is the store's, keyed by its bare operation (%s)",
					k, strings.Join(chaos.Ops(), ", "))
			}
			if !slices.Contains(chaos.Ops(), k) {
				return usageErrorf("invalid --chaos %s: the local store has no operation %s (it is an AWS backend's: use --target aws); its operations are %s",
					k, k, strings.Join(chaos.Ops(), ", "))
			}
		}
	}
	if !c.seedSet {
		c.Seed = rand.Uint64N(1 << 31)
	}
	return nil
}

// injector returns the chaos injector, or nil when chaos is off; it prints
// that chaos is on.
func (c *chaosFlags) injector(io *IOStreams) *chaos.Injector {
	return c.injectorFor(io, "the local store")
}

// injectorFor is injector for calls to what.
func (c *chaosFlags) injectorFor(io *IOStreams, what string) *chaos.Injector {
	if !c.Spec.Enabled() {
		return nil
	}
	fmt.Fprintln(io.ErrOut, c.Spec.NoticeFor(what, c.Seed))
	return chaos.New(c.Spec.Config(c.Seed))
}

// args passes chaos on to a built binary's run or worker command (which
// prints the notice itself).
func (c *chaosFlags) args() []string {
	if !c.Spec.Enabled() {
		return nil
	}
	return []string{"--chaos", c.Spec.String(), "--chaos-seed", strconv.FormatUint(c.Seed, 10)}
}
