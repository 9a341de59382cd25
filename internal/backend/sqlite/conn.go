package sqlite

import (
	"fmt"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The write connection is driven through SQLite's C API as modernc.org/sqlite/lib
// exposes it, not through database/sql: every transition runs half a dozen
// statements on it, and database/sql's argument conversion, statement lookup
// and Rows handling, plus the driver's per-call allocations (a C copy of every
// text argument, column names for every query), were about 15% of the CPU of
// one worker. Reads stay on database/sql's pool.

// conn is one SQLite connection. It is not safe for concurrent use; the DB
// serializes its use with wmu.
type conn struct {
	tls *libc.TLS
	db  uintptr
}

// sqliteError is an SQLite failure on the write connection. Its Code is the
// extended result code, as sqlite.Error's is.
type sqliteError struct {
	code int
	msg  string
}

func (e *sqliteError) Error() string { return e.msg }

// Code returns the extended result code.
func (e *sqliteError) Code() int { return e.code }

// openConn opens path read-write (creating it) with the settings every lfsm
// connection has: WAL, synchronous=NORMAL, the busy timeout and the WAL's
// auto-checkpoint, as the driver's DSN sets them on the read connections.
func openConn(path string, busy time.Duration) (*conn, error) {
	c := &conn{tls: libc.NewTLS()}
	name, err := libc.CString(path)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, 8)
	if pdb == 0 {
		c.tls.Close()
		return nil, fmt.Errorf("open %s: out of memory", path)
	}
	defer libc.Xfree(c.tls, pdb)
	*(*uintptr)(cptr(pdb)) = 0
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb,
		sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE|sqlite3.SQLITE_OPEN_FULLMUTEX, 0)
	c.db = *(*uintptr)(cptr(pdb))
	if rc != sqlite3.SQLITE_OK {
		err := c.error(rc)
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, int32(busy.Milliseconds()))
	if err := c.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 4000"); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// exec runs one or more statements without arguments (pragmas).
func (c *conn) exec(sql string) error {
	p, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, p)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, p, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.error(rc)
	}
	return nil
}

func (c *conn) error(rc int32) error {
	msg := sqlite3.Xsqlite3_errstr(c.tls, rc)
	text := libc.GoString(msg)
	if c.db != 0 {
		if m := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); m != "" && m != text {
			text += ": " + m
		}
	}
	return &sqliteError{code: int(rc), msg: fmt.Sprintf("%s (%d)", text, rc)}
}

func (c *conn) close() {
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		c.db = 0
	}
	c.tls.Close()
}

// changes is the number of rows the last statement changed.
func (c *conn) changes() int64 { return int64(sqlite3.Xsqlite3_changes(c.tls, c.db)) }

// lastInsertID is the rowid of the last inserted row.
func (c *conn) lastInsertID() int64 { return sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db) }

// stmt is a statement prepared on a conn. Text and blob arguments are copied
// into buf, a C buffer the statement keeps (bound as SQLITE_STATIC, so SQLite
// reads them in place until the next bind), instead of a malloc per argument.
type stmt struct {
	c    *conn
	p    uintptr
	buf  uintptr
	size int // capacity of buf
	used int
	old  []uintptr // buffers outgrown while binding, freed at the next bind
}

// prepare compiles sql, which must be a single statement.
func (c *conn) prepare(sql string) (*stmt, error) {
	z, err := libc.CString(sql)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, z)
	pp := libc.Xmalloc(c.tls, 8)
	if pp == 0 {
		return nil, fmt.Errorf("prepare: out of memory")
	}
	defer libc.Xfree(c.tls, pp)
	*(*uintptr)(cptr(pp)) = 0
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pp, 0); rc != sqlite3.SQLITE_OK {
		return nil, c.error(rc)
	}
	return &stmt{c: c, p: *(*uintptr)(cptr(pp))}, nil
}

func (s *stmt) close() {
	if s == nil {
		return
	}
	sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
	s.freeBuffers()
	if s.buf != 0 {
		libc.Xfree(s.c.tls, s.buf)
		s.buf = 0
	}
}

func (s *stmt) freeBuffers() {
	for _, b := range s.old {
		libc.Xfree(s.c.tls, b)
	}
	s.old = s.old[:0]
}

// bind starts binding the arguments of one execution; every parameter must be
// bound again (parameters are numbered from 1).
func (s *stmt) bind() *stmt {
	s.freeBuffers()
	s.used = 0
	return s
}

// alloc returns room for n bytes in the statement's buffer. A larger buffer
// replaces it when it is full; the old one stays alive until the next bind,
// since earlier arguments of this execution point into it.
func (s *stmt) alloc(n int) uintptr {
	if s.used+n > s.size {
		size := max(2*s.size, s.used+n, 1024)
		b := libc.Xmalloc(s.c.tls, libc.Tsize_t(size))
		if b == 0 {
			panic("sqlite: out of memory")
		}
		if s.buf != 0 {
			s.old = append(s.old, s.buf)
		}
		s.buf, s.size, s.used = b, size, 0
	}
	p := s.buf + uintptr(s.used)
	s.used += n
	return p
}

func (s *stmt) int64(i int, v int64) *stmt {
	sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v)
	return s
}

func (s *stmt) int(i int, v int) *stmt { return s.int64(i, int64(v)) }

func (s *stmt) bool(i int, v bool) *stmt {
	if v {
		return s.int64(i, 1)
	}
	return s.int64(i, 0)
}

func (s *stmt) text(i int, v string) *stmt {
	n := len(v)
	p := s.alloc(max(n, 1))
	copy(unsafe.Slice((*byte)(cptr(p)), n), v)
	sqlite3.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), p, int32(n), 0)
	return s
}

// blob binds v, or NULL when v is nil (an empty non-nil v is an empty blob).
func (s *stmt) blob(i int, v []byte) *stmt {
	if v == nil {
		sqlite3.Xsqlite3_bind_null(s.c.tls, s.p, int32(i))
		return s
	}
	n := len(v)
	p := s.alloc(max(n, 1))
	copy(unsafe.Slice((*byte)(cptr(p)), n), v)
	sqlite3.Xsqlite3_bind_blob(s.c.tls, s.p, int32(i), p, int32(n), 0)
	return s
}

// exec runs the statement to completion (rows of a RETURNING clause are
// skipped) and resets it.
func (s *stmt) exec() error {
	for {
		rc := sqlite3.Xsqlite3_step(s.c.tls, s.p)
		switch rc {
		case sqlite3.SQLITE_ROW:
			continue
		case sqlite3.SQLITE_DONE:
			sqlite3.Xsqlite3_reset(s.c.tls, s.p)
			return nil
		}
		err := s.c.error(rc)
		sqlite3.Xsqlite3_reset(s.c.tls, s.p)
		return err
	}
}

// step advances to the next row: true when there is one, false when done
// (the statement is then reset). After an error it is reset too.
func (s *stmt) step() (bool, error) {
	rc := sqlite3.Xsqlite3_step(s.c.tls, s.p)
	switch rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		sqlite3.Xsqlite3_reset(s.c.tls, s.p)
		return false, nil
	}
	err := s.c.error(rc)
	sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	return false, err
}

// reset ends an execution whose rows were not all read.
func (s *stmt) reset() { sqlite3.Xsqlite3_reset(s.c.tls, s.p) }

func (s *stmt) colInt64(i int) int64 { return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i)) }

func (s *stmt) colInt(i int) int { return int(s.colInt64(i)) }

// colBytes copies column i of the current row (nil for NULL, empty for an
// empty value).
func (s *stmt) colBytes(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(s.c.tls, s.p, int32(i))
	n := int(sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i)))
	if p == 0 {
		if sqlite3.Xsqlite3_column_type(s.c.tls, s.p, int32(i)) == sqlite3.SQLITE_NULL {
			return nil
		}
		return []byte{}
	}
	out := make([]byte, n)
	copy(out, unsafe.Slice((*byte)(cptr(p)), n))
	return out
}

func (s *stmt) colText(i int) string {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := int(sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i)))
	if p == 0 || n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(cptr(p)), n))
}

// cptr turns an address of C memory (allocated by libc, outside the Go heap)
// into a pointer.
func cptr(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }
