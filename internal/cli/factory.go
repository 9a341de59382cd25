package cli

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/lfsm/lfsm/internal/config"
)

// Factory hands commands what they depend on. One Factory serves one process
// (or one test); commands read its fields when they run, not when they are
// built, because the root command fills Config just before a command runs.
type Factory struct {
	IOStreams *IOStreams
	// WorkDir is the working directory: lfsm.yaml is looked up there, and
	// diagnostics print paths relative to it.
	WorkDir string
	// BuildInfo reports how the binary was built (runtime/debug.ReadBuildInfo).
	BuildInfo func() (*debug.BuildInfo, bool)
	// Config holds the merged settings (flag > env > lfsm.yaml > default) of the
	// command being run. It is set by the root command's PersistentPreRunE.
	Config config.Config
	// ConfigFile is the settings file that was read, or "" when none was.
	ConfigFile string

	// sources records, per flag, the environment variable or file that set it.
	sources map[string]string
}

// NewFactory returns the Factory of a real process, writing to ios.
func NewFactory(ios *IOStreams) (*Factory, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("get working directory: %w", err)
	}
	return &Factory{
		IOStreams: ios,
		WorkDir:   wd,
		BuildInfo: debug.ReadBuildInfo,
		Config:    config.Default(),
	}, nil
}
