// Package lambda is the AWS Lambda entry of a project binary: one handler,
// reduced to Invoke(ctx, payload) ([]byte, error) as aws-lambda-go's
// lambda.Handler is, so that it runs the same in Lambda, under the runtime
// interface emulator and in tests.
//
// Invoke routes on the shape of the event: SQS batches, Kinesis and
// DynamoDB-stream batches and SNS notifications carry wire-format messages
// that the engine handles one by one (with the partial batch responses each
// source understands); an EventBridge scheduled event runs the Poller; a
// request with a "command" key is a direct invocation (start, send, stop,
// resume); a request with "mode": "step_functions" runs one Task of a Step
// Functions state machine (only the actions, returning the next message);
// and a bare wire-format message is handled as a record of its own. See
// docs/lambda.md for the contract and docs/design.md for why.
//
// The package imports aws-lambda-go's event types and nothing of the AWS SDK:
// the calls it needs on AWS (change an SQS message's visibility, the scheduled
// poll) are interfaces declared here and implemented under internal/backend.
package lambda
