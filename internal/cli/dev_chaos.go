package cli

import (
	"context"

	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/ddbstream"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/esm"
)

// The clients lfsm dev --target aws reads the dispatch with, under chaos:
// what Lambda's event source mapping does in AWS (receive, delete; read a
// shard), failed by their backend's view, so that sqs.Ack=0.2 makes a
// handled message come back, as a lost DeleteMessageBatch would. The
// function's own backends are wrapped in the function (fsm/host).

type chaosSQS struct {
	esm.SQSAPI
	inj *chaos.Injector
}

func (c chaosSQS) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	if err := c.inj.Fail(chaos.OpReceive); err != nil {
		return nil, err
	}
	return c.SQSAPI.ReceiveMessage(ctx, in, opts...)
}

func (c chaosSQS) DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error) {
	if err := c.inj.Fail(chaos.OpAck); err != nil {
		return nil, err
	}
	return c.SQSAPI.DeleteMessageBatch(ctx, in, opts...)
}

type chaosKinesis struct {
	kinesis.ReadAPI
	inj *chaos.Injector
}

func (c chaosKinesis) GetRecords(ctx context.Context, in *awskinesis.GetRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error) {
	if err := c.inj.Fail(chaos.OpReceive); err != nil {
		return nil, err
	}
	return c.ReadAPI.GetRecords(ctx, in, opts...)
}

type chaosStreams struct {
	ddbstream.API
	inj *chaos.Injector
}

func (c chaosStreams) GetRecords(ctx context.Context, in *streams.GetRecordsInput, opts ...func(*streams.Options)) (*streams.GetRecordsOutput, error) {
	if err := c.inj.Fail(chaos.OpReceive); err != nil {
		return nil, err
	}
	return c.API.GetRecords(ctx, in, opts...)
}
