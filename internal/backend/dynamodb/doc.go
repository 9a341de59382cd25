// Package dynamodb is the engine's execution store on Amazon DynamoDB: it
// implements engine.Store, engine.DropRecorder and, when given the dispatch
// queue, engine.StepCommitter (commit first, then send), so that every step
// is in the history exactly once with any number of concurrent consumers on
// SQS or SNS. docs/design.md ("The DynamoDB store") explains the table, the
// indexes and the write order.
//
// One table holds every record, keyed by pk (the correlation id, or "d" for
// dropped messages) and sk: "e" is the execution item, "h#STEP#ATTEMPT#FENCE"
// a step item (its history entry and the message it left as checkpoint), "t"
// the tombstone of a retired execution (retention.go: the one rule by which
// an id that TTL or a prune deleted is never run again), and under pk "d"
// one item per dropped message. With Options.Retention, DynamoDB's TTL
// deletes finished executions and their items. Three sparse global secondary
// indexes, KEYS_ONLY, list executions newest first: by machine, by machine and
// status, and by one of 16 shards for listings across machines. CreateTable
// creates it.
package dynamodb
