package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the driver of the read connections
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lfsm/lfsm/internal/engine"
)

// Options configure Open.
type Options struct {
	// Clock tells the queue the time (delays and visibility timeouts); nil means
	// time.Now. The Store does not use it: its requests carry the time.
	Clock func() time.Time
	// PollInterval bounds how long a waiting Receive takes to notice a message
	// sent by another process; 0 means 50 ms. Sends from the same process wake
	// it at once.
	PollInterval time.Duration
	// BusyTimeout is how long a write waits for another process's transaction
	// before it fails; 0 means 10 s.
	BusyTimeout time.Duration
	// Readers is the number of connections for reads besides the one that writes;
	// 0 means 4.
	Readers int
}

// DB is an open lfsm database file. It implements engine.Store, engine.Queue,
// engine.Retrier, engine.Source and engine.Tailer, and is safe for concurrent
// use by goroutines and by other processes opening the same file.
type DB struct {
	path  string
	clock func() time.Time
	poll  time.Duration
	db    *sql.DB

	// wmu serializes this process's writes on w, the write connection (not
	// one of db's), and guards the statements prepared on it.
	wmu   sync.Mutex
	w     *conn
	ws    writeStmts
	batch batcher
	// closed is set by Close under wmu: w and ws are freed C memory then, and
	// a write that used them would crash the process, not fail.
	closed bool

	// wake is closed (and replaced) by Send so waiting receivers retry at once.
	wakeMu  sync.Mutex
	wake    chan struct{}
	waiters atomic.Int32
}

var (
	_ engine.Store          = (*DB)(nil)
	_ engine.Queue          = (*DB)(nil)
	_ engine.Retrier        = (*DB)(nil)
	_ engine.Source         = (*DB)(nil)
	_ engine.Tailer         = (*DB)(nil)
	_ engine.StepCommitter  = (*DB)(nil)
	_ engine.LeasingSource  = (*DB)(nil)
	_ engine.SwapSender     = (*DB)(nil)
	_ engine.CreateSender   = (*DB)(nil)
	_ engine.ReopenSender   = (*DB)(nil)
	_ engine.PendingCounter = (*DB)(nil)
	_ engine.DropRecorder   = (*DB)(nil)
)

// applicationID marks lfsm files in the SQLite header ("lfsm").
const applicationID = 0x6c66736d

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

// migrations[i] upgrades a file from schema version i to i+1. Append only; never
// edit a released migration.
var migrations = []string{
	// 1: queue, executions, history.
	`
CREATE TABLE queue (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	key        TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	visible_at INTEGER NOT NULL, -- unix ns; the message is hidden before
	attempts   INTEGER NOT NULL DEFAULT 0 -- deliveries so far; with id, the receipt
);
CREATE INDEX queue_visible ON queue (visible_at);

CREATE TABLE executions (
	correlation_id TEXT PRIMARY KEY,
	machine        TEXT    NOT NULL DEFAULT '',
	status         TEXT    NOT NULL,
	state          TEXT    NOT NULL DEFAULT '',
	event          TEXT    NOT NULL DEFAULT '',
	done_step      INTEGER NOT NULL DEFAULT -1,
	retries        INTEGER NOT NULL DEFAULT 0,
	fence          INTEGER NOT NULL DEFAULT 0,
	lease_step     INTEGER NOT NULL DEFAULT -1,
	lease_expires  INTEGER NOT NULL DEFAULT 0, -- unix ns; 0 when the lease is open
	failed_step    INTEGER NOT NULL DEFAULT -1, -- step whose attempts failed last
	failed_attempt INTEGER NOT NULL DEFAULT -1, -- highest failed attempt of it
	last_error     TEXT    NOT NULL DEFAULT '',
	checkpoint     BLOB,
	send_receipt   TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL DEFAULT 0,
	updated_at     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- No index on updated_at: every transition would rewrite it twice; List sorts.

CREATE TABLE history (
	id             INTEGER PRIMARY KEY, -- max+1: increasing while the newest row stays

	correlation_id TEXT    NOT NULL,
	machine        TEXT    NOT NULL,
	step           INTEGER NOT NULL,
	retries        INTEGER NOT NULL,
	fence          INTEGER NOT NULL,
	from_state     TEXT    NOT NULL,
	event          TEXT    NOT NULL,
	to_state       TEXT    NOT NULL,
	actions        TEXT    NOT NULL, -- joined with U+001F
	outcome        TEXT    NOT NULL,
	error          TEXT    NOT NULL,
	started        INTEGER NOT NULL, -- unix ns
	duration       INTEGER NOT NULL  -- ns
);
CREATE INDEX history_execution ON history (correlation_id, id);
`,
	// 2: List pages newest first by key. created_at is written once (Create,
	// or Acquire's insert), so the index costs transitions nothing; filters
	// on machine, status and state are checked along it.
	`
CREATE INDEX executions_newest ON executions (created_at, correlation_id);
`,
	// 3: messages the engine could not run (engine.DropRecorder).
	`
CREATE TABLE dropped (
	id             INTEGER PRIMARY KEY,
	at             INTEGER NOT NULL, -- unix ns
	reason         TEXT    NOT NULL,
	detail         TEXT    NOT NULL,
	correlation_id TEXT    NOT NULL, -- '' when unknown
	machine        TEXT    NOT NULL, -- '' when unknown
	size           INTEGER NOT NULL  -- payload bytes
);
CREATE INDEX dropped_at ON dropped (at);
`,
	// 4: what is left of pruned executions (engine.Pruner): their ids stay
	// refused.
	`
CREATE TABLE tombstones (
	correlation_id TEXT PRIMARY KEY,
	machine        TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	done_step      INTEGER NOT NULL,
	pruned_at      INTEGER NOT NULL -- unix ns
) WITHOUT ROWID;
`,
	// 5: counts per machine, state and status (engine.Counter) read this
	// index alone. Unlike executions_newest it is rewritten by transitions
	// that change the state (docs/benchmarks.md has the cost).
	`
CREATE INDEX executions_count ON executions (machine, state, status);
`,
	// 6: what the protocol's repair, heartbeats and resume need: the due time
	// of the message in flight (indexed for Stranded, over running executions
	// only), the takeovers of the current step's lease, the time of the last
	// resume, and the queue by key (a run's own messages, Pending, and
	// Stranded's "nothing queued").
	`
ALTER TABLE executions ADD COLUMN due_at    INTEGER NOT NULL DEFAULT 0; -- unix ns; 0 when nothing is due
ALTER TABLE executions ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN restarted INTEGER NOT NULL DEFAULT 0; -- unix ns of the last resume
CREATE INDEX executions_due ON executions (due_at) WHERE status = 'running';
CREATE INDEX queue_key ON queue (key, visible_at);
`,
	// 7: without 6's indexes, which cost every transition about 7% each of
	// the one-write path's CPU (the due time changes with every commit, the
	// queue's key with every send and ack; docs/benchmarks.md). Stranded,
	// Pending and ReceiveKey, which are periodic or rare, scan instead.
	`
DROP INDEX IF EXISTS executions_due;
DROP INDEX IF EXISTS queue_key;
`,
}

// Open opens (creating it and its directory if needed) the lfsm database at
// path and upgrades its schema. Close it when done.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open lfsm database: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open lfsm database %s: the path must not contain ? or #", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open lfsm database %s: %w", path, err)
		}
	}
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	readers := opts.Readers
	if readers <= 0 {
		readers = 4
	}
	// auto_vacuum comes first: it takes effect only on a new file, before
	// journal_mode writes its first page (elsewhere it is a no-op until a
	// VACUUM, see DB.Vacuum). With it, pages lfsm prune frees go back to the
	// file system (Prune runs incremental_vacuum).
	dsn := fmt.Sprintf("%s?_txlock=immediate&_pragma=auto_vacuum(INCREMENTAL)&_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(4000)",
		path, busy.Milliseconds())
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open lfsm database %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(readers + 1)
	sdb.SetMaxIdleConns(readers + 1)
	sdb.SetConnMaxIdleTime(0)
	sdb.SetConnMaxLifetime(0)

	d := &DB{path: path, clock: opts.Clock, poll: opts.PollInterval, db: sdb, wake: make(chan struct{})}
	if d.clock == nil {
		d.clock = time.Now
	}
	if d.poll <= 0 {
		d.poll = 50 * time.Millisecond
	}
	if err := d.open(ctx, busy); err != nil {
		sdb.Close()
		return nil, err
	}
	return d, nil
}

func (d *DB) open(ctx context.Context, busy time.Duration) error {
	if err := d.migrate(ctx); err != nil {
		return err
	}
	w, err := openConn(d.path, busy)
	if err != nil {
		return d.fileError("open", err)
	}
	if err := d.ws.prepare(w); err != nil {
		d.ws.close()
		w.close()
		return d.fileError("prepare statements", err)
	}
	d.w = w
	return nil
}

// checkHeader refuses a non-empty file that is not an SQLite database before
// SQLite sees it (SQLite would only complain at the first query).
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open lfsm database %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil // empty file: SQLite makes it a database
	}
	if !bytes.Equal(head[:n], sqliteHeader) {
		return fmt.Errorf("open lfsm database %s: not an SQLite database; move the file aside or choose another path", path)
	}
	return nil
}

// migrate brings the schema to SchemaVersion in one IMMEDIATE transaction, so
// that processes opening a new file at once do not both create it.
func (d *DB) migrate(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return d.fileError("open", err)
	}
	defer c.Close()
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return d.fileError("begin schema check", err)
	}
	defer tx.Rollback()
	var appID, version, tables int
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return d.fileError("read schema", err)
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return d.fileError("read schema", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return d.fileError("read schema", err)
	}
	switch {
	case appID != 0 && appID != applicationID, appID == 0 && (version != 0 || tables != 0):
		return fmt.Errorf("open lfsm database %s: an SQLite database of another application; move the file aside or choose another path", d.path)
	case version > SchemaVersion:
		return fmt.Errorf("open lfsm database %s: schema version %d is newer than this lfsm understands (%d); upgrade lfsm, or move the file aside to start afresh", d.path, version, SchemaVersion)
	case version == SchemaVersion:
		return nil
	}
	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return d.fileError(fmt.Sprintf("upgrade schema to version %d", v+1), err)
		}
	}
	pragmas := fmt.Sprintf("PRAGMA user_version = %d; PRAGMA application_id = %d", SchemaVersion, applicationID)
	if _, err := tx.ExecContext(ctx, pragmas); err != nil {
		return d.fileError("record schema version", err)
	}
	if err := tx.Commit(); err != nil {
		return d.fileError("upgrade schema", err)
	}
	return nil
}

// fileError wraps err with what was being done and, for a damaged file, the fix.
func (d *DB) fileError(op string, err error) error {
	var se interface{ Code() int }
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%s: %s is not an SQLite database; move the file aside or choose another path: %w", op, d.path, err)
		case sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%s: %s is corrupt; restore it from a backup or move it aside to start afresh (sqlite3 %s .recover may save its data): %w", op, d.path, d.path, err)
		}
	}
	return fmt.Errorf("%s (%s): %w", op, d.path, err)
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// errClosed fails writes after Close.
var errClosed = errors.New("database is closed")

// Close closes the database. Pending operations of other goroutines fail
// (writes with errClosed). Closing again does nothing.
func (d *DB) Close() error {
	d.wmu.Lock()
	if d.closed {
		d.wmu.Unlock()
		return nil
	}
	d.closed = true
	d.ws.close()
	d.w.close()
	d.wmu.Unlock()
	err := d.db.Close()
	if err != nil {
		return fmt.Errorf("close lfsm database %s: %w", d.path, err)
	}
	return nil
}

// nanos stores t as unix nanoseconds; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos reverses nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
