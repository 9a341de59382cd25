package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// FileName is the name of the project settings file looked up in the working
// directory when no --config flag names another.
const FileName = "lfsm.yaml"

// DefaultSpecFile is the spec file commands read when no -f/--file is given.
const DefaultSpecFile = "fsm.yaml"

// ParentPipeEnv names, in a project binary's environment, the file
// descriptor of a pipe whose other end the lfsm that started it (lfsm dev,
// lfsm run) holds open for as long as it lives: when lfsm dies, however it
// dies, the binary reads end of file and stops as on SIGTERM. It complements
// Linux's parent-death signal on systems that have none (macOS).
const ParentPipeEnv = "LFSM_PARENT_PIPE"

// EnvPrefix prefixes the environment variables that set lfsm options:
// LFSM_OUTPUT sets --output, LFSM_LAMBDA_ARN sets --lambda-arn.
const EnvPrefix = "LFSM"

// Target says where executions run and state lives.
type Target string

// Targets: local runs on the project's SQLite store; aws operates
// executions on the DynamoDB store and the dispatch the aws: settings name.
const (
	TargetLocal Target = "local"
	TargetAWS   Target = "aws"
)

// Targets lists the valid targets, in the order help text shows them.
func Targets() []Target { return []Target{TargetLocal, TargetAWS} }

// ParseTarget returns the Target named by s.
func ParseTarget(s string) (Target, error) {
	t := Target(s)
	if slices.Contains(Targets(), t) {
		return t, nil
	}
	names := make([]string, 0, len(Targets()))
	for _, t := range Targets() {
		names = append(names, string(t))
	}
	return "", fmt.Errorf("unknown target %q: want one of %s", s, strings.Join(names, ", "))
}

// Config is the content of lfsm.yaml. Every key may also be given as a flag of
// the same name or as an LFSM_ environment variable (dashes become underscores).
type Config struct {
	// File is the spec file (flag -f/--file).
	File string `mapstructure:"file" json:"file"`
	// Machine is the machine commands act on when -m/--machine is not given.
	Machine string `mapstructure:"machine" json:"machine"`
	// Target is where executions run (flag --target).
	Target Target `mapstructure:"target" json:"target"`
	// Output is the preferred output format of commands that print results
	// (flag --output). Commands reject formats they do not support.
	Output string `mapstructure:"output" json:"output"`
	// LambdaARN is the deployed function that Step Functions exports call
	// (flag --lambda-arn).
	LambdaARN string `mapstructure:"lambda-arn" json:"lambda_arn"`
	// DB is the local store, a SQLite file (flag --db); empty means
	// .lfsm/lfsm.db in the project directory (the Go module root holding the
	// spec, else the spec's directory).
	DB string `mapstructure:"db" json:"db"`
	// Chaos makes calls to the local store fail at random (flag --chaos of
	// run and dev). In lfsm.yaml it is a map, which the settings loader
	// reads through ChaosFromSetting, hence no mapstructure decoding.
	Chaos Chaos `mapstructure:"-" json:"chaos"`
	// Retention, when set, makes workers (lfsm dev, the project binary's
	// worker) prune executions finished longer ago than it, as lfsm prune
	// --older-than does: a duration such as 720h or 30d (ParseAge).
	Retention string `mapstructure:"retention" json:"retention"`
	// ChaosSeed seeds the chaos draws (flag --chaos-seed); 0 means random.
	ChaosSeed uint64 `mapstructure:"chaos-seed" json:"chaos_seed"`
	// AWS says where executions live with target aws.
	AWS AWS `mapstructure:"aws" json:"aws"`
	// Metrics says what the deployed function publishes besides its EMF
	// lines, and where lfsm metrics --target aws reads it.
	Metrics Metrics `mapstructure:"metrics" json:"metrics"`
}

// Metrics is the metrics: section of lfsm.yaml. Every key is also an
// environment variable (LFSM_METRICS_CLOUDWATCH, LFSM_METRICS_NAMESPACE),
// the names the deployed function reads.
type Metrics struct {
	// CloudWatch turns on the function's PutMetricData publisher: one call
	// per invocation with everything it counted (lfsm deploy adds the
	// permission, in Namespace only).
	CloudWatch bool `mapstructure:"cloudwatch" json:"cloudwatch"`
	// Namespace is the metrics' namespace (default lfsm).
	Namespace string `mapstructure:"namespace" json:"namespace,omitempty"`
	// SecondaryRegion, when set, is where the publisher puts its data when
	// the function's own region fails (a breaker, as the dispatch's
	// secondaries fail over), and where lfsm metrics reads too.
	SecondaryRegion string `mapstructure:"secondary-region" json:"secondary_region,omitempty"`
}

// MetricsKeys lists the keys of the metrics: section, as lfsm.yaml spells them.
func MetricsKeys() []string {
	return []string{"metrics.cloudwatch", "metrics.namespace", "metrics.secondary-region"}
}

// ValidRegion checks the shape of an AWS region name (us-west-2).
func ValidRegion(r string) error {
	if !regionRE.MatchString(r) {
		return fmt.Errorf("region %q: want a region name such as us-west-2", r)
	}
	return nil
}

// Default returns the settings used when nothing else sets them.
func Default() Config {
	return Config{File: DefaultSpecFile, Target: TargetLocal, Output: "text"}
}

// Keys lists the keys lfsm.yaml may hold, sorted.
func Keys() []string {
	return []string{"aws", "chaos", "chaos-seed", "db", "file", "lambda-arn", "machine", "metrics", "output", "retention", "target"}
}

// Validate checks values whose shape is known without a command's context. It
// reports every problem it finds.
func (c Config) Validate() error {
	var errs []error
	if c.Target != "" {
		if _, err := ParseTarget(string(c.Target)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Retention != "" {
		if _, err := ParseAge(c.Retention); err != nil {
			errs = append(errs, fmt.Errorf("retention: %w", err))
		}
	}
	if c.AWS.Retention != "" {
		if _, err := ParseAge(c.AWS.Retention); err != nil {
			errs = append(errs, fmt.Errorf("aws.retention: %w", err))
		}
	}
	if c.AWS.Dispatch != "" && !slices.Contains(dispatches, c.AWS.Dispatch) {
		errs = append(errs, fmt.Errorf("invalid aws.dispatch %q: want one of %s", c.AWS.Dispatch, strings.Join(dispatches, ", ")))
	}
	if c.LambdaARN != "" {
		if _, err := ParseLambdaARN(c.LambdaARN); err != nil {
			errs = append(errs, err)
		}
	}
	if r := c.Metrics.SecondaryRegion; r != "" {
		if err := ValidRegion(r); err != nil {
			errs = append(errs, fmt.Errorf("metrics.secondary-region: %w", err))
		}
	}
	return errors.Join(errs...)
}
