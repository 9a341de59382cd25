// Package sns is the engine's Queue on an Amazon SNS topic.
//
// A topic reaches the function in one of two ways, both deployed by
// internal/deploy: Lambda subscribed to it directly (dispatch sns: SNS
// invokes asynchronously, Lambda retries an event twice and then hands it to
// the on-failure destination, so the handler puts what must run again on
// the retrier and never loses it), or an SQS queue subscribed with raw
// message delivery (dispatch sns-sqs: the queue then receives the payload
// itself as the body, and the rest is the SQS path). SNS cannot delay a
// message: Send refuses a delay, and retries go to the retry table or SQS.
// A message is at most 256 KiB (MaxMessageBytes).
package sns
