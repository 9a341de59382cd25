// Package chaos wraps engine backends so that their calls fail at random, with
// a configured probability per operation (REFERENCE.md §4): a way to show that
// workflows survive an unreliable store or queue, locally and in tests.
//
//	inj := chaos.New(chaos.Config{Default: 0.2, Rand: rand.New(rand.NewPCG(1, 2))})
//	b := inj.Backend(memoryBackend) // Store, Queue, Retrier and Source in one value
//	eng, err := engine.New(engine.Options{Store: b, Queue: b, ...})
//
// Backend keeps a backend that is store and queue at once recognisable as one
// to the engine, and passes engine.StepCommitter through, so the one-write
// step (CommitStep, its own operation) is fault-tested too. Store, Queue,
// Retrier and Source wrap one seam each; with them the engine takes its
// general path (Send, Commit, Ack).
//
// A failing call returns an *Error (errors.Is(err, chaos.ErrInjected)) before
// the wrapped backend is called, so nothing is written. Wrappers compose with
// any implementation of the engine's interfaces.
package chaos
