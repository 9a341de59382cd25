package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

// open opens a fresh database in a temporary directory, closed at the end of t.
func open(t testing.TB, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".lfsm", "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) engine.Store { return open(t, sqlite.Options{}) })
}

func TestProtocol(t *testing.T) {
	storetest.RunProtocol(t, func(t *testing.T) engine.Store { return open(t, sqlite.Options{}) })
}

func TestQueue(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T, clock func() time.Time) storetest.QueueBackend {
		return open(t, sqlite.Options{Clock: clock, PollInterval: 5 * time.Millisecond})
	})
}

func TestStepCommitter(t *testing.T) {
	storetest.RunStepCommitter(t, func(t *testing.T, clock func() time.Time) storetest.StepBackend {
		return open(t, sqlite.Options{Clock: clock, PollInterval: 5 * time.Millisecond})
	})
}

func TestDropRecorder(t *testing.T) {
	storetest.RunDropRecorder(t, func(t *testing.T) engine.DropRecorder { return open(t, sqlite.Options{}) })
}

func TestPruner(t *testing.T) {
	storetest.RunPruner(t, func(t *testing.T) engine.Store { return open(t, sqlite.Options{}) })
}

func TestCounter(t *testing.T) {
	storetest.RunCounter(t, func(t *testing.T) engine.Store { return open(t, sqlite.Options{}) })
}
