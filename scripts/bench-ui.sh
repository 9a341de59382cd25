#!/usr/bin/env bash
# First paint of lfsm ui's executions page over a SQLite store of 10,000
# executions, in headless chromium (Debian's chromium must be on PATH):
# milliseconds from navigation to the table drawn (ms-to-table, median and
# max over the loads) and to the first contentful paint (ms-fcp).
# Usage: scripts/bench-ui.sh [LOADS] (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
loads=${1:-20}
command -v chromium >/dev/null || { echo "bench-ui: no chromium on PATH (apt-get install --no-install-recommends chromium)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
go test ./internal/ui -run '^$' -bench FirstPaint -benchtime "${loads}x" -count 3 | grep -E '^(Benchmark|ok|FAIL)'
