#!/bin/sh
# The appliance's figures: size of the shipped release binary, then alarm path latency and
# idle cost (benches/appliance.rs). Arguments go to the bench, e.g. --alarms 200 --idle-secs 20.
# `cargo bench` builds `vigil` with the dev-dependencies' features unified in, so its copy is
# a little larger than the shipped one; the size that counts is measured first, here.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin vigil
bytes=$(stat -c %s target/release/vigil)
awk -v b="$bytes" 'BEGIN { printf "(c) shipped binary (cargo build --release): %d bytes = %.2f MB (%.2f MiB)   target <= 10 MB\n", b, b / 1e6, b / 1048576 }'
cargo bench --bench appliance -- "$@"
