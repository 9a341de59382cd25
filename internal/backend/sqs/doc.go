// Package sqs is the engine's Queue and Retrier on Amazon SQS: the dispatch
// queue that a Lambda event source mapping reads, and retries delayed with
// DelaySeconds (at most 900 s, SQS's limit; a longer delay is chained: sent
// with 900 s and its due time in DueAttribute, and sent again by whoever
// receives it early, with the rest, until it is due).
//
// The receive side is Lambda's poller, not this package. A queue is named by
// its ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) in settings; New asks SQS for its
// URL once, and the client's region must be the ARN's. FIFO queues (names ending in .fifo) get the correlation id as
// message group, so one execution's messages stay ordered; they cannot delay a
// single message, so a delayed send to one is refused.
package sqs
