package sqs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DefaultMaxMessageBytes is SQS's largest message, and a queue's
// MaximumMessageSize unless it was lowered.
const DefaultMaxMessageBytes = 1 << 20

// attributeReserve is the room MaxMessageBytes keeps for the attributes the
// queue adds to a body (DueAttribute: its name, type and value are counted
// against MaximumMessageSize with the body).
const attributeReserve = 64

// AttributesAPI is the call MaxMessageBytes makes (*sqs.Client has it).
type AttributesAPI interface {
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
}

// MaxMessageBytes is the largest body the queue at url takes: its
// MaximumMessageSize, read with one GetQueueAttributes call, less room for
// the attributes Send adds. A queue whose owner lowered the size refuses
// bigger messages at send, after the step that sends one has committed, so
// the limit is checked before (the engine's MaxMessageBytes). The error of
// a failed call is returned with DefaultMaxMessageBytes less the reserve,
// for a caller that goes on with SQS's default.
func MaxMessageBytes(ctx context.Context, c AttributesAPI, url string) (int, error) {
	def := DefaultMaxMessageBytes - attributeReserve
	out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameMaximumMessageSize},
	})
	if err != nil {
		return def, fmt.Errorf("read the SQS queue's MaximumMessageSize: %w", err)
	}
	v, ok := out.Attributes[string(types.QueueAttributeNameMaximumMessageSize)]
	if !ok {
		return def, nil // the service did not say: its default
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= attributeReserve {
		return def, fmt.Errorf("the SQS queue's MaximumMessageSize %q is not a size in bytes", v)
	}
	return n - attributeReserve, nil
}
