#!/usr/bin/env bash
# Measure how long `lfsm version` and a project binary (the seed example's,
# `machines`) take to start with empty TMPDIR, cache and home directories, as a
# CI job, a container or a Lambda cold start has them, and check that neither
# writes anything there. Target: under 50 ms each (docs/benchmarks.md).
# Also times the first and a cached `lfsm graph --output svg`, for reference.
# Uses hyperfine when it is installed (Debian: apt-get install hyperfine),
# else a plain loop. usage: scripts/startup.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/lfsm" ./cmd/lfsm
"$work/lfsm" build -f examples/seed/fsm.yaml --out "$work/seed" >/dev/null 2>&1

# fresh empties the directories a start may write to; env_for names them.
fresh() { rm -rf "$work/e" && mkdir -p "$work/e/tmp" "$work/e/cache" "$work/e/home"; }
env_for="TMPDIR=$work/e/tmp XDG_CACHE_HOME=$work/e/cache HOME=$work/e/home LFSM_CACHE_DIR=$work/e/lfsm"

# check runs a command once in fresh directories and fails if it wrote there.
check() {
	fresh
	env $env_for "$@" >/dev/null
	local left
	left=$(find "$work/e" -mindepth 2 | head -5)
	if [[ -n $left ]]; then
		echo "FAIL: $* wrote: $left" >&2
		exit 1
	fi
	echo "ok: $(basename "$1") ${*:2} wrote nothing to TMPDIR, XDG_CACHE_HOME, HOME or LFSM_CACHE_DIR"
}
check "$work/lfsm" version
check "$work/seed" machines

# measure prints the mean and min wall time of a command over $runs fresh starts.
measure() {
	local name=$1
	shift
	if command -v hyperfine >/dev/null; then
		hyperfine -N --style basic --warmup 3 --runs "$runs" --prepare "bash -c 'rm -rf $work/e && mkdir -p $work/e/tmp $work/e/cache $work/e/home'" \
			--command-name "$name" "env $env_for $*" | grep -E 'Benchmark|Time|Range'
		return
	fi
	local total=0 min=0 t0 t1 ms
	for ((i = 0; i < runs; i++)); do
		fresh
		t0=$(date +%s%N)
		env $env_for "$@" >/dev/null
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000))
		total=$((total + ms))
		if ((min == 0 || ms < min)); then min=$ms; fi
	done
	printf '%s: mean %d.%03d ms, min %d.%03d ms over %d runs\n' "$name" $((total / runs / 1000)) $((total / runs % 1000)) $((min / 1000)) $((min % 1000)) "$runs"
}
measure "lfsm version" "$work/lfsm" version
measure "project binary (seed) machines" "$work/seed" machines

# For reference: the first svg render builds lfsm's Graphviz renderer into
# LFSM_CACHE_DIR/graphviz (go build, with the host's module cache: once with
# an empty Go build cache, as on a fresh machine, and once with the host's);
# later renders run it, and it loads Graphviz's compiled WebAssembly from there.
svg=(graph -f examples/seed/fsm.yaml -m Example --output svg)
gomodcache=$(go env GOMODCACHE)
gocache=$(go env GOCACHE)
render() { # render LABEL GOCACHE
	t0=$(date +%s%N)
	env $env_for GOMODCACHE="$gomodcache" GOCACHE="$2" "$work/lfsm" "${svg[@]}" >/dev/null 2>&1
	t1=$(date +%s%N)
	echo "lfsm graph --output svg, $1: $(((t1 - t0) / 1000000)) ms"
}
fresh
render "empty lfsm cache, empty Go build cache" "$work/e/gocache"
fresh
render "empty lfsm cache, warm Go build cache" "$gocache"
render "renderer built                       " "$gocache"
render "renderer built                       " "$gocache"
