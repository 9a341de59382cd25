// Package sendbatch holds what the dispatch backends' batched sends (SQS
// SendMessageBatch, Kinesis PutRecords, SNS PublishBatch) share: the error
// that names, by index, the messages of a batch that stayed unsent after
// every retry, so that a caller committing a batch of steps (the DynamoDB
// store's CommitSteps, StartBatch) fails only those steps.
package sendbatch

import "fmt"

// Error reports the messages of a batched send that were not sent after
// every attempt, by index into the caller's slice.
type Error struct {
	// Op says what was sent where ("send to SQS queue URL").
	Op     string
	Failed map[int]error
}

// FailedIndexes returns the messages not sent, by index, and why.
func (e *Error) FailedIndexes() map[int]error { return e.Failed }

// Error says how many messages were not sent and the first reason.
func (e *Error) Error() string {
	first := -1
	for i := range e.Failed {
		if first < 0 || i < first {
			first = i
		}
	}
	return fmt.Sprintf("%s: %d message(s) not sent, message %d: %v", e.Op, len(e.Failed), first, e.Failed[first])
}
