package cli

import (
	"fmt"
	"math/rand/v2"
	"strconv"

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
	fl.Var(&c.Spec, "chaos", "make calls to the local store fail at random: a probability for every call (0.1) or per operation (default=0.1,Commit=0.5)")
	fl.Uint64Var(&c.Seed, "chaos-seed", 0, "with --chaos: seed of the failure draws, to repeat a run (default: random, printed)")
}

// check returns a usage error for --chaos-seed without chaos, and picks a
// random seed when none was given.
func (c *chaosFlags) check(cmd *cobra.Command) error {
	c.seedSet = cmd.Flags().Changed("chaos-seed")
	if !c.Spec.Enabled() {
		if c.seedSet {
			return usageErrorf("--chaos-seed needs --chaos (or chaos in lfsm.yaml, or LFSM_CHAOS)")
		}
		return nil
	}
	if !c.seedSet {
		c.Seed = rand.Uint64N(1 << 31)
	}
	return nil
}

// injector returns the chaos injector, or nil when chaos is off; it prints
// that chaos is on.
func (c *chaosFlags) injector(io *IOStreams) *chaos.Injector {
	if !c.Spec.Enabled() {
		return nil
	}
	fmt.Fprintln(io.ErrOut, c.Spec.Notice(c.Seed))
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
