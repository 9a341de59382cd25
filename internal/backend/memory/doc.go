// Package memory is an in-process backend for the engine: one value that is a
// Store (executions, leases with fence tokens, done markers, history), a Queue,
// a Retrier and a Source (a FIFO with delayed delivery and visibility timeouts).
//
// It keeps everything in maps and slices behind two mutexes, one for the store and
// one for the queue, so it is fast enough to benchmark the engine itself (a queued
// transition costs a few microseconds) and needs no clean-up in tests. Nothing
// survives the process; the sqlite package is the durable local backend.
//
// Time: the Store takes the time from its requests; the queue asks Options.Clock,
// which tests replace to move time without sleeping.
package memory
