package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// TestUpgradeFromVersion1 opens a file written by the first schema (an
// execution in it) and finds it upgraded: the execution is kept and dropped
// messages can be recorded.
func TestUpgradeFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], fmt.Sprintf("PRAGMA user_version = 1; PRAGMA application_id = %d", applicationID),
		`INSERT INTO executions (correlation_id, machine, status) VALUES ('old1', 'M', 'done')`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer db.Close()
	if x, err := db.Get(t.Context(), "old1"); err != nil || x.Status != engine.StatusDone {
		t.Fatalf("Get(old1) after upgrade = %+v, %v", x, err)
	}
	d := engine.DroppedMessage{Time: time.Unix(5, 0).UTC(), Reason: engine.DropNoVersion, Detail: "x", Size: 3}
	if err := db.RecordDrop(t.Context(), d); err != nil {
		t.Fatalf("RecordDrop after upgrade: %v", err)
	}
	if got, err := db.ListDropped(t.Context(), engine.DropFilter{}); err != nil || len(got) != 1 || got[0] != d {
		t.Fatalf("ListDropped after upgrade = %+v, %v; want [%+v]", got, err, d)
	}
}
