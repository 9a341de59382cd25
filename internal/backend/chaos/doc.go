// Package chaos wraps engine backends so that their calls fail at random, with
// a configured probability per operation (REFERENCE.md §4): a way to show that
// workflows survive an unreliable store or queue, locally and in tests.
//
//	inj := chaos.New(chaos.Config{Default: 0.2, Rand: rand.New(rand.NewPCG(1, 2))})
//	store := inj.Store(memoryBackend)
//	queue := inj.Queue(memoryBackend)
//
// A failing call returns an *Error (errors.Is(err, chaos.ErrInjected)) before
// the wrapped backend is called, so nothing is written. Wrappers compose with
// any implementation of the engine's interfaces.
package chaos
