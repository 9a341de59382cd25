#!/usr/bin/env bash
# Soak benchmark (not a test, not in CI): executions of a 10-step machine
# through the Lambda handler on the local emulators with faults injected on
# every operation of every backend (chaos default=P: DynamoDB, SQS in the
# function and in Lambda's mapping, the lease cache), half on the composite
# store with Redis (FLUSHALL mid-run) and half with Memcached (restarted
# mid-run), each cache its own server started for the run. Reports the
# executions lost, steps committed twice or missing from the history (all
# must be 0), wall time, faults per operation and the calls the faults cost
# against a run without faults. Needs the emulators (source the emulators'
# environment: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SQS, ...),
# redis-server and memcached on PATH.
# Usage: scripts/soak.sh [EXECUTIONS] [FAULTS] [INSTANCES]
#   (default 1000 executions, 0.1 faults, 4 function instances)
set -euo pipefail
cd "$(dirname "$0")/.."
export LFSM_SOAK=1
export LFSM_SOAK_EXECUTIONS=${1:-1000}
export LFSM_SOAK_FAULTS=${2:-0.1}
export LFSM_SOAK_WORKERS=${3:-4}
for v in AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SQS; do
	[ -n "${!v:-}" ] || { echo "soak: $v is not set: start the emulators and source their environment" >&2; exit 1; }
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
go test ./fsm/host -run '^TestSoak$' -count 1 -v -timeout 120m | grep -E 'soak:|^(--- |ok|FAIL|panic)'
