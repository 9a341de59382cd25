package sqlite

import "context"

// SetAutoVacuumNoneForTest turns auto-vacuum off and rewrites the file, as
// files created before lfsm set it were.
func (d *DB) SetAutoVacuumNoneForTest(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA auto_vacuum = NONE"); err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, "VACUUM")
	return err
}

// Checkpoint copies the WAL into the file and truncates it.
func (d *DB) Checkpoint(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return drain(c.QueryContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"))
}
