// Package storetest is the conformance suite every engine backend runs: RunStore
// checks the Store rules of internal/engine/backend.go (create, the acquire rule,
// atomic commits with fences, reads, status changes and, when implemented, the
// history log of engine.Tailer); RunQueue checks the local queue (send, receive,
// ack, delayed delivery, visibility timeouts, retries) with a fake clock.
//
// A backend's test calls them with a constructor:
//
//	func TestStore(t *testing.T) {
//		storetest.RunStore(t, func(t *testing.T) engine.Store { return memory.New(memory.Options{}) })
//	}
package storetest
