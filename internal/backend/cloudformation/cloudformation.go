// Package cloudformation reads the outputs of the stack lfsm deploy created,
// which name every resource of a deployment (aws: {stack: NAME} in
// lfsm.yaml).
package cloudformation

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
)

// API is the part of the CloudFormation client Outputs calls.
type API interface {
	DescribeStacks(ctx context.Context, in *cfn.DescribeStacksInput, opts ...func(*cfn.Options)) (*cfn.DescribeStacksOutput, error)
}

// ErrNoStack: the stack does not exist (or the credentials cannot see it).
var ErrNoStack = errors.New("stack not found")

// Outputs returns the outputs of stack (a name or an ARN), by output key.
func Outputs(ctx context.Context, c API, stack string) (map[string]string, error) {
	out, err := c.DescribeStacks(ctx, &cfn.DescribeStacksInput{StackName: aws.String(stack)})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" {
		return nil, fmt.Errorf("read CloudFormation stack %s: %w (%s): deploy it with lfsm deploy, or check aws.stack and the AWS region", stack, ErrNoStack, ae.ErrorMessage())
	}
	if err != nil {
		return nil, fmt.Errorf("read CloudFormation stack %s: %w", stack, err)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("read CloudFormation stack %s: %w", stack, ErrNoStack)
	}
	m := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		m[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return m, nil
}
