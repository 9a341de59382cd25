package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/lfsm/lfsm/internal/config"
)

// envName is the environment variable that sets the flag or key name.
func envName(name string) string {
	return config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// bindSettings merges flags, LFSM_* environment variables and the settings
// file into cmd's flags and f.Config, with that precedence. A flag the user did
// not set takes its value from the environment, else from the settings file,
// else keeps its default; so commands only ever read their flags.
func bindSettings(cmd *cobra.Command, f *Factory) error {
	v := viper.New()
	v.SetEnvPrefix(config.EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()

	path, err := configPath(cmd, f)
	if err != nil {
		return err
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read settings %s: %w", path, err)
		}
		// Only the file's keys are known at this point: nothing is bound yet.
		var unknown []string
		for _, k := range v.AllKeys() {
			if !slices.Contains(config.Keys(), k) && !slices.Contains(config.AWSKeys(), k) && !slices.Contains(config.MetricsKeys(), k) && !strings.HasPrefix(k, "chaos.") {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			return fmt.Errorf("read settings %s: unknown keys %s (known: %s)", path,
				strings.Join(unknown, ", "), strings.Join(settingsKeys(), ", "))
		}
	}
	f.ConfigFile = path
	f.sources = map[string]string{}
	fileChaos, err := readChaos(path)
	if err != nil {
		return err
	}

	var errs []error
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name == "config" || fl.Name == "help" || fl.Annotations[annotationFlagOnly] != nil {
			return
		}
		if err := v.BindPFlag(fl.Name, fl); err != nil {
			errs = append(errs, err)
			return
		}
		// IsSet ignores flag defaults: true means the environment or the file.
		if fl.Changed || !v.IsSet(fl.Name) {
			return
		}
		source := filepath.Base(path)
		value := v.GetString(fl.Name)
		fromEnv := os.Getenv(envName(fl.Name)) != ""
		if !fromEnv && fl.Annotations[annotationNoFileSetting] != nil {
			return
		}
		if fromEnv {
			source = envName(fl.Name)
		} else if fl.Name == "chaos" {
			value = fileChaos.String() // a map in the file, already checked
		}
		if err := cmd.Flags().Set(fl.Name, value); err != nil {
			errs = append(errs, usageErrorf("invalid value %q for --%s (set by %s): %w",
				value, fl.Name, source, err))
			return
		}
		f.sources[fl.Name] = source
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, k := range settingsKeys() {
		if k == "aws" || k == "metrics" {
			// A section, not a value: bound, its (unset) variable would hide
			// the section's keys in viper's merged settings at random.
			continue
		}
		if err := v.BindEnv(k); err != nil {
			return fmt.Errorf("bind settings: %w", err)
		}
	}

	cfg := config.Default()
	if err := v.Unmarshal(&cfg); err != nil {
		return fmt.Errorf("decode settings: %w", err)
	}
	cfg.Chaos = fileChaos
	if fl := cmd.Flags().Lookup("chaos"); fl != nil {
		cfg.Chaos = *fl.Value.(*config.Chaos)
	} else if s := os.Getenv(envName("chaos")); s != "" {
		if cfg.Chaos, err = config.ParseChaos(s); err != nil {
			return usageErrorf("invalid %s: %w", envName("chaos"), err)
		}
	}
	if _, err := config.ParseTarget(string(cfg.Target)); err != nil {
		return usageErrorf("invalid --target%s: %w", f.sourceNote("target"), err)
	}
	f.Config = cfg
	return nil
}

// settingsKeys are every key lfsm.yaml may hold, sections' keys with their
// section (aws.stack, metrics.namespace).
func settingsKeys() []string {
	return slices.Concat(config.Keys(), config.AWSKeys(), config.MetricsKeys())
}

// annotationFlagOnly marks a flag that no setting sets: neither lfsm.yaml
// nor an LFSM_ variable (see flagOnly).
const annotationFlagOnly = "lfsm_flag_only"

// flagOnly keeps every setting away from the flag name of fs: only the
// command line sets it. deploy's --function-chaos is one, so that a chaos
// setting kept for local runs, or an exported LFSM_FUNCTION_CHAOS, can never
// put chaos into a deployed function.
func flagOnly(fs *pflag.FlagSet, name string) {
	if err := fs.SetAnnotation(name, annotationFlagOnly, []string{"true"}); err != nil {
		panic(err) // a flag of ours that is not defined: a programmer bug
	}
}

// annotationNoFileSetting marks a flag that the settings file does not set
// (the environment still does): see ignoreFileSetting.
const annotationNoFileSetting = "lfsm_no_file_setting"

// ignoreFileSetting keeps lfsm.yaml's key of the same name away from the flag
// name of fs. ls and tail read the machine setting this way: a project's
// default machine is what run and start act on, and a listing that silently
// showed one machine's executions looked empty.
func ignoreFileSetting(fs *pflag.FlagSet, name string) {
	if err := fs.SetAnnotation(name, annotationNoFileSetting, []string{"true"}); err != nil {
		panic(err) // a flag of ours that is not defined: a programmer bug
	}
}

// readChaos returns the chaos setting of the settings file at path ("" for
// none). It reads the file itself: viper lowercases map keys, and chaos keys
// are operation names (Commit).
func readChaos(path string) (config.Chaos, error) {
	if path == "" {
		return config.Chaos{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return config.Chaos{}, fmt.Errorf("read settings %s: %w", path, err)
	}
	var raw struct {
		Chaos any `yaml:"chaos"`
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return config.Chaos{}, fmt.Errorf("read settings %s: %w", path, err)
	}
	c, err := config.ChaosFromSetting(raw.Chaos)
	if err != nil {
		return c, usageErrorf("invalid chaos in %s: %w", path, err)
	}
	return c, nil
}

// configPath returns the settings file to read: --config, else LFSM_CONFIG,
// else lfsm.yaml in the working directory if there is one, else "".
func configPath(cmd *cobra.Command, f *Factory) (string, error) {
	named, _ := cmd.Flags().GetString("config")
	if named == "" {
		named = os.Getenv(envName("config"))
	}
	if named != "" {
		if _, err := os.Stat(named); err != nil {
			return "", fmt.Errorf("read settings: %w", err)
		}
		return named, nil
	}
	path := filepath.Join(f.WorkDir, config.FileName)
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		return "", fmt.Errorf("read settings: %w", err)
	}
}

// sourceNote says where a flag's value came from when it was not the command
// line, for error messages: " (set by LFSM_OUTPUT)".
func (f *Factory) sourceNote(flag string) string {
	if s, ok := f.sources[flag]; ok {
		return fmt.Sprintf(" (set by %s)", s)
	}
	return ""
}

// checkEnum returns a usage error unless value is one of allowed.
func checkEnum(f *Factory, flag, value string, allowed []string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return usageErrorf("invalid --%s %q%s: allowed values are %s",
		flag, value, f.sourceNote(flag), strings.Join(allowed, ", "))
}
