// Package kinesis is the engine's Queue on an Amazon Kinesis data stream,
// and a shard reader that plays Lambda's Kinesis event source mapping for
// lfsm dev --target aws.
//
// Every record's partition key is the correlation id, so one execution's
// messages land on one shard, in order. Kinesis cannot delay a record:
// Send refuses a positive delay, and retries go to a retry source that can
// wait (the DynamoDB retry table, or SQS). A stream is named by its ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME) in settings, but every call
// names the stream by StreamName: kinesalite fails ARN-only calls, and AWS
// accepts either.
//
// The largest record is read once, in New, from DescribeStreamSummary's
// MaxRecordSizeInKiB (1 MiB when the service does not say, as kinesalite
// does not); MaxMessageBytes is that less the partition key's room.
package kinesis
