#!/bin/sh
# The appliance's figures: size of the shipped release binary, then alarm path latency and
# idle cost (benches/appliance.rs). Arguments go to the bench, e.g. --alarms 200 --idle-secs 20.
# The size that counts is the Debian package's binary: built as the package builds it
# (Cargo.toml's [package.metadata.deb]: no simulators, ALSA and TLS), measured first, here.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p vigil --no-default-features --features alsa,tls
bytes=$(stat -c %s target/release/vigil)
awk -v b="$bytes" 'BEGIN { printf "(c) shipped binary (no simulators; alsa, tls): %d bytes = %.2f MB (%.2f MiB)   target <= 10 MB\n", b, b / 1e6, b / 1048576 }'
cargo bench --bench appliance -- "$@"
