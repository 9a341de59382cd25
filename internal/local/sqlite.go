package local

import (
	"context"
	"errors"
)

// openSQLite opens the embedded store. TODO: wire internal/backend/sqlite.
func openSQLite(ctx context.Context, path string) (Backend, func(), error) {
	return nil, nil, errors.New("open " + path + ": sqlite backend not available yet")
}
