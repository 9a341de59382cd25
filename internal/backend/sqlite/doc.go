// Package sqlite is the embedded, durable backend for local runs: one SQLite
// file per project (for example .lfsm/lfsm.db) holds the queue, the execution
// records and their history, and serves as engine.Store, engine.Queue,
// engine.Retrier, engine.Source and engine.Tailer at once.
//
// It uses the pure-Go driver modernc.org/sqlite (no cgo), in WAL mode with
// synchronous=NORMAL: a committed transition survives a crash of the process,
// and the last few may be lost on power loss (docs/design.md, "SQLite store").
// Several processes may share the file (workers in one terminal, start, tail
// and inspect in another): every write is one IMMEDIATE transaction or a single
// statement, and Receive claims its messages with one UPDATE ... RETURNING, so
// no message is handed to two receivers within its visibility timeout.
//
// Within a process, writes go through one pinned connection with prepared
// statements, serialized by a mutex (cheaper than SQLite's busy handler); reads
// (Get, List, History, HistorySince) use the pool's other connections.
//
// The schema is versioned with PRAGMA user_version and upgraded by Open; a file
// written by a newer lfsm, a file that is not an lfsm database, or a corrupt
// file is refused with an error that names the file and what to do.
package sqlite
