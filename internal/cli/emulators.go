package cli

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/deploy"
)

// emulatorAccount is the account the emulators' ARNs name.
const emulatorAccount = "000000000000"

// emulatorServices are the AWS_ENDPOINT_URL_<SERVICE> names the model of m
// needs, so that --emulators never reaches real AWS by accident.
func emulatorServices(m *deploy.Model) []string {
	need := []string{"DYNAMODB"}
	if len(m.Queues) > 0 {
		need = append(need, "SQS")
	}
	if m.Stream {
		need = append(need, "KINESIS")
	}
	if m.Topic {
		need = append(need, "SNS")
	}
	return need
}

func defaultLocalClients(ctx context.Context, m *deploy.Model) (deploy.LocalClients, error) {
	var missing []string
	for _, s := range emulatorServices(m) {
		if os.Getenv("AWS_ENDPOINT_URL_"+s) == "" {
			missing = append(missing, "AWS_ENDPOINT_URL_"+s)
		}
	}
	if missing != nil {
		return deploy.LocalClients{}, usageErrorf("deploy --emulators applies only to local emulators, and %s not set (scripts/emulators/emu-start.sh prints them)",
			strings.Join(missing, ", ")+map[bool]string{true: " is", false: " are"}[len(missing) == 1])
	}
	cfg, err := awsconfig.Load(ctx, "", nil)
	if err != nil {
		return deploy.LocalClients{}, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return deploy.LocalClients{
		DynamoDB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true }),
		SQS:      sqs.NewFromConfig(cfg),
		SNS:      sns.NewFromConfig(cfg),
		Kinesis:  kinesis.NewFromConfig(cfg),
		Region:   cfg.Region, Account: emulatorAccount,
	}, nil
}

// EmulatorsResult is what lfsm deploy --emulators did (--output json).
type EmulatorsResult struct {
	FormatVersion string               `json:"format_version"`
	Stack         string               `json:"stack"`
	Changed       bool                 `json:"changed"`
	Actions       []deploy.LocalAction `json:"actions"`
	Settings      map[string]string    `json:"settings"`
}

func runDeployEmulators(ctx context.Context, opts *DeployOptions, m *deploy.Model) error {
	local := opts.Local
	if local == nil {
		local = defaultLocalClients
	}
	c, err := local(ctx, m)
	if err != nil {
		return err
	}
	c.Force = opts.Force
	res, err := m.ApplyLocal(ctx, c)
	if err != nil {
		return fmt.Errorf("apply stack %s to the emulators: %w", m.Settings.Stack, err)
	}
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, EmulatorsResult{FormatVersion: "1", Stack: m.Settings.Stack, Changed: res.Changed(), Actions: res.Actions, Settings: res.Settings})
	}
	w := opts.IO.Out
	fmt.Fprintf(w, "Stack %s on the local emulators:\n", m.Settings.Stack)
	idW, typeW, actW := 0, 0, 0
	for _, a := range res.Actions {
		idW, typeW, actW = max(idW, len(a.LogicalID)), max(typeW, len(a.Type)), max(actW, len(a.Action))
	}
	differs := false
	for _, a := range res.Actions {
		note := a.Name
		if a.Detail != "" {
			note = strings.TrimSpace(note + "  " + a.Detail)
		}
		differs = differs || a.Action == "differs"
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s  %-*s  %-*s  %s", actW, a.Action, idW, a.LogicalID, typeW, a.Type, note), " "))
	}
	if !res.Changed() {
		fmt.Fprintln(w, "Nothing changed.")
	}
	fmt.Fprintln(w, "\nThere is no stack on the emulators, so name the resources in lfsm.yaml:")
	fmt.Fprintln(w, "  target: aws\n  aws:")
	// Keys with a dot are a section's (secondary.dispatch-arn), written
	// nested as lfsm.yaml has them.
	sections := map[string][]string{}
	for _, k := range slices.Sorted(maps.Keys(res.Settings)) {
		if sec, key, ok := strings.Cut(k, "."); ok {
			sections[sec] = append(sections[sec], key)
			continue
		}
		fmt.Fprintf(w, "    %s: %s\n", k, res.Settings[k])
	}
	for _, sec := range slices.Sorted(maps.Keys(sections)) {
		fmt.Fprintf(w, "    %s:\n", sec)
		for _, key := range sections[sec] {
			fmt.Fprintf(w, "      %s: %s\n", key, res.Settings[sec+"."+key])
		}
	}
	if differs {
		return fmt.Errorf("a table on the emulators differs from the model and was left as it is (its keys cannot change in place): lfsm deploy --emulators --force recreates it, deleting its items")
	}
	return nil
}
