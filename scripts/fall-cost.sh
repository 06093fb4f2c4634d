#!/bin/sh
# Instructions per sample of the fall detector, measured with callgrind on the bench binary:
# two runs of different lengths, so loading and start-up cancel out in the difference.
# Usage: scripts/fall-cost.sh [RATE_HZ]
set -eu
rate="${1:-200}"
cd "$(dirname "$0")/.."
bin=$(cargo bench --bench fall --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\/deps\/fall-[^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "fall bench binary not found" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ir() {
    FALL_BENCH_SAMPLES="$1" FALL_BENCH_RATE="$rate" valgrind --tool=callgrind \
        --callgrind-out-file="$out/cg.$1" "$bin" >/dev/null 2>"$out/log.$1"
    sed -n 's/^summary: *//p' "$out/cg.$1"
}
small=200000
large=1200000
a=$(ir "$small")
b=$(ir "$large")
echo "fall detector at $rate Hz: $(( (b - a) / (large - small) )) instructions per sample (callgrind Ir, $a and $b over $small and $large samples)"
