package local

import (
	"context"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
)

// openSQLite opens (creating it if needed) the embedded store at path.
func openSQLite(ctx context.Context, path string) (Backend, func(), error) {
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, nil, err
	}
	// Close errors after a run are not actionable: the data is committed.
	return db, func() { db.Close() }, nil
}
