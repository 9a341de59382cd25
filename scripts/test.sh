#!/usr/bin/env bash
# Run lfsm's checks and test suite from the repository root: go vet, then every
# package's tests, uncached; then the same for the seed example's nested module
# (examples/seed, which ./... does not reach); then the race detector over the
# packages where goroutines and processes share state in-process (engine,
# local stores, local runtime, Lambda handler). Packages that share the
# emulators run one at a time. Extra arguments are passed to go test (e.g.
# -run X).
#
# Each step says what it runs. go test's output goes through
# scripts/testsummary, which prints the packages' ok/FAIL lines and the output
# of failed tests only; the last line counts every test of every step:
# "N passed, N failed". The exit status is 1 when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
counts="$tmp/counts"
: >"$counts"
status=0

step() { printf '\n==> %s\n' "$*"; }

step "building scripts/testsummary"
go build -o "$tmp/testsummary" ./scripts/testsummary

# gotest DESCRIPTION DIR GO-TEST-ARGS...: one go test run in DIR, summarized.
gotest() {
	local what="$1" dir="$2"
	shift 2
	step "$what"
	(cd "$dir" && go test -json "$@") | "$tmp/testsummary" -counts "$counts" || status=1
}

step "go vet ./... and examples/seed (on a cold build cache this compiles everything: about a minute)"
go vet ./... || status=1
(cd examples/seed && go vet ./...) || status=1

# The packages whose tests talk to the local AWS emulators, Redis or
# Memcached (they skip without them, and fail under CI=true). They share one
# instance of each server, so they run one package at a time: run together,
# DynamoDB Local's lock waits made the dispatch load test 5 times slower.
emulated=(
	./internal/backend/sqs ./internal/backend/sns ./internal/backend/kinesis
	./internal/backend/ddbstream ./internal/backend/redis ./internal/backend/memcached ./internal/backend/leasecache/endpoint
	./internal/backend/dynamodb ./internal/backend/failover ./internal/deploy
	./internal/ui ./internal/esm ./internal/cli ./internal/dispatch ./fsm/host
)
mapfile -t others < <(go list ./... | grep -v -x -F -f <(for p in "${emulated[@]}"; do go list "$p"; done))

gotest "go test (every package that needs no emulator)" . -count=1 "$@" "${others[@]}"
gotest "go test, one package at a time (packages that share the emulators; the end-to-end scripts build projects: a few minutes)" . \
	-count=1 -p 1 -timeout 30m "$@" "${emulated[@]}"
gotest "go test in examples/seed (the seed's nested module)" examples/seed -count=1 "$@" ./...
gotest "go test -race (engine, in-process backends, local runtime, Lambda handler)" . -race -count=1 "$@" \
	./internal/engine ./internal/backend/memory ./internal/backend/sqlite ./internal/backend/chaos \
	./internal/backend/leasecache ./internal/local ./internal/lambda

echo
if [ "$status" -ne 0 ]; then
	echo "something failed: see the FAIL lines above"
fi
"$tmp/testsummary" -total "$counts" || status=1
exit "$status"
