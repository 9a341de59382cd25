package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/deploy"
)

// DestroyOptions are the inputs of lfsm destroy.
type DestroyOptions struct {
	IO         *IOStreams
	WorkDir    string
	File       string
	Stack      string
	Project    string
	Yes        bool
	DeleteData bool
	Output     string
	Clients    func(context.Context) (*awsClients, error)
	Wait       func(context.Context) error
}

func newDestroyCmd(f *Factory, runF func(*DestroyOptions) error) *cobra.Command {
	opts := &DestroyOptions{}
	cmd := &cobra.Command{
		Use:   "destroy [--stack NAME] [--delete-data] [--yes]",
		Short: "Delete the project's CloudFormation stack",
		Long: heredoc(`
			Delete the project's stack and follow its events until it is gone.
			The tables that hold executions are kept (DeletionPolicy Retain):
			destroy says which, and a later deploy under the same stack name
			fails on them until they are deleted. --delete-data deletes them too,
			through the DynamoDB API, once the stack is gone: every execution
			and its history is lost.

			Asks on a terminal; pass --yes otherwise.
		`),
		Example: example(`
			lfsm destroy
			lfsm destroy --stack shop --delete-data --yes
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			opts.Stack = stackName(opts.Stack, f)
			if runF != nil {
				return runF(opts)
			}
			return runDestroy(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` of the project (names the default stack)")
	fl.StringVar(&opts.Stack, "stack", "", "CloudFormation stack `NAME` (default: aws.stack, else the project name)")
	fl.StringVar(&opts.Project, "project", "", "project `NAME` (default: the Go module's last path element)")
	fl.BoolVar(&opts.DeleteData, "delete-data", false, "also delete the retained tables, and every execution in them")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "delete without asking")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

// DestroyResult is what lfsm destroy did (--output json).
type DestroyResult struct {
	FormatVersion string   `json:"format_version"`
	Stack         string   `json:"stack"`
	Existed       bool     `json:"existed"`
	Kept          []string `json:"kept"`
	DeletedTables []string `json:"deleted_tables"`
}

func runDestroy(ctx context.Context, opts *DestroyOptions) error {
	stack := opts.Stack
	if stack == "" {
		stack = opts.Project
		if stack == "" {
			stack = projectName(opts.File)
		}
	}
	clients, err := (&DeployOptions{Clients: opts.Clients}).clients(ctx)
	if err != nil {
		return err
	}
	text := opts.Output != outputJSON
	d := &deploy.Deployer{CFN: clients.CFN, Wait: opts.Wait}
	if text {
		d.Progress = progressPrinter(opts.IO.ErrOut)
	}
	st, err := d.Stack(ctx, stack)
	if err != nil {
		return err
	}
	if st == nil && !opts.DeleteData {
		if !text {
			return writeJSON(opts.IO.Out, DestroyResult{FormatVersion: "1", Stack: stack, Kept: []string{}, DeletedTables: []string{}})
		}
		fmt.Fprintf(opts.IO.Out, "Stack %s does not exist: nothing to delete.\n", stack)
		return nil
	}
	if !opts.Yes {
		q := fmt.Sprintf("Delete stack %s (its tables are kept)?", stack)
		if opts.DeleteData {
			q = fmt.Sprintf("Delete stack %s and its tables, with every execution in them?", stack)
		}
		if ok, err := confirm(opts.IO, opts.Output, q); !ok {
			return err
		}
	}
	res := DestroyResult{FormatVersion: "1", Stack: stack, Existed: st != nil, Kept: []string{}, DeletedTables: []string{}}
	kept, err := d.Destroy(ctx, stack)
	if err != nil {
		return err
	}
	for _, e := range kept {
		res.Kept = append(res.Kept, e.LogicalID)
	}
	if opts.DeleteData {
		// The names the template gives the stateful tables, for every
		// dispatch: also after a destroy that kept them.
		for _, suffix := range []string{"executions", "retries", "dispatch"} {
			name := stack + "-" + suffix
			_, err := clients.Tables.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
			var nf *ddbtypes.ResourceNotFoundException
			switch {
			case errors.As(err, &nf):
				continue
			case err != nil:
				return fmt.Errorf("delete table %s: %w", name, err)
			}
			res.DeletedTables = append(res.DeletedTables, name)
		}
		res.Kept = []string{}
	}
	if !text {
		return writeJSON(opts.IO.Out, res)
	}
	if st != nil {
		fmt.Fprintf(opts.IO.Out, "Deleted stack %s.\n", stack)
	}
	switch {
	case opts.DeleteData && len(res.DeletedTables) > 0:
		fmt.Fprintf(opts.IO.Out, "Deleted tables %s: their executions are gone.\n", strings.Join(res.DeletedTables, ", "))
	case opts.DeleteData:
		fmt.Fprintln(opts.IO.Out, "No tables of the stack were left to delete.")
	case len(res.Kept) > 0:
		fmt.Fprintf(opts.IO.Out, "Kept %s (DeletionPolicy Retain): executions and their history are still there. lfsm destroy --stack %s --delete-data deletes them.\n",
			strings.Join(res.Kept, ", "), stack)
	}
	return nil
}
