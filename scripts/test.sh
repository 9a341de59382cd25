#!/usr/bin/env bash
# Run lfsm's checks and test suite from the repository root: go vet, then every
# package's tests, uncached; then the same for the seed example's nested module
# (examples/seed, which ./... does not reach); then the race detector over the
# packages where goroutines and processes share state (engine, stores, local
# runtime). Extra arguments are passed to go test (e.g. -run X).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 "$@" ./...
(cd examples/seed && go vet ./... && go test -count=1 "$@" ./...)
go test -race -count=1 "$@" ./internal/engine ./internal/backend/... ./internal/local
