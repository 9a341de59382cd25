// Package engine is lfsm's runtime: it compiles spec machines (Compile), and
// runs their executions one message at a time (Engine.Handle) with the
// protocol of docs/design.md: acquire the execution's lease with a fence token
// (which also refuses duplicates), run the actions of REFERENCE.md §2 (local
// transitions in-process), send the next message or schedule a retry with
// full-jitter backoff, and commit step, status, checkpoint and history at once.
//
// The engine imports no AWS package. Everything outside the process is behind
// the interfaces of backend.go (Store, Queue, Retrier, Source, Metrics, Clock),
// implemented under internal/backend. Messages use the wire format of
// REFERENCE.md §3 (DecodeMessage, EncodeMessage), so executions started by the
// Python framework continue here.
//
// Operators drive executions with Start, Send (an outside event for a waiting
// execution), Stop and Resume; RunWorker drives a local Source.
package engine
