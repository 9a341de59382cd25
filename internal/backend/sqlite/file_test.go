package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	now := time.Unix(1700000000, 0).UTC()
	if err := db.Create(t.Context(), engine.Execution{CorrelationID: "c", Machine: "M", CreatedAt: now}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := db.Send(t.Context(), engine.OutMessage{Key: "c", Payload: []byte("hello")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db, err = sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if _, err := db.Get(t.Context(), "c"); err != nil {
		t.Errorf("Get after reopen: %v", err)
	}
	ds, err := db.Receive(t.Context(), 1, time.Minute, 0)
	if err != nil || len(ds) != 1 || string(ds[0].Payload) != "hello" {
		t.Errorf("Receive after reopen = %v, %v; want the message sent before", ds, err)
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  []string // substrings of the error, besides the path
	}{
		{
			name: "not a database",
			setup: func(t *testing.T, path string) {
				writeFile(t, path, strings.Repeat("name: orders\nstates: []\n", 100))
			},
			want: []string{"not an SQLite database", "move the file aside"},
		},
		{
			name: "another application's database",
			setup: func(t *testing.T, path string) {
				rawExec(t, path, "CREATE TABLE photos (id INTEGER PRIMARY KEY)")
			},
			want: []string{"another application", "move the file aside"},
		},
		{
			name: "newer schema",
			setup: func(t *testing.T, path string) {
				db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				rawExec(t, path, "PRAGMA user_version = 99")
			},
			want: []string{"schema version 99 is newer", "upgrade lfsm"},
		},
		{
			name: "corrupt",
			setup: func(t *testing.T, path string) {
				db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				rawExec(t, path, "PRAGMA journal_mode = DELETE") // fold the WAL into the file
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for i := 100; i < len(b) && i < 4096; i++ { // the schema page after the header
					b[i] = 0xA5
				}
				writeFile(t, path, string(b))
			},
			want: []string{"corrupt", "move it aside"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lfsm.db")
			tc.setup(t, path)
			db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
			if err == nil {
				db.Close()
				t.Fatalf("Open succeeded, want an error")
			}
			for _, s := range append(tc.want, path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestEmptyFileBecomesDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lfsm.db")
	writeFile(t, path, "")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open of an empty file: %v", err)
	}
	db.Close()
}

func TestOpenRefusesOddPaths(t *testing.T) {
	for _, p := range []string{"", "a?b.db", "x#y.db"} {
		if db, err := sqlite.Open(t.Context(), p, sqlite.Options{}); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var got [2]int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&got[0]); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow("PRAGMA application_id").Scan(&got[1]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([2]int{sqlite.SchemaVersion, 0x6c66736d}, got); diff != "" {
		t.Errorf("user_version, application_id (-want +got):\n%s", diff)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rawExec runs query on path with the driver directly, bypassing Open.
func rawExec(t *testing.T, path, query string) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
