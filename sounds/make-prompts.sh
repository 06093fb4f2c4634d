#!/bin/sh
# Makes sounds/<lang>/<stem>.wav from sounds/catalogue/<lang>.tsv with espeak-ng and sox.
#
# Every prompt is 16 kHz mono 16-bit PCM (small in git; the player resamples to the device
# rate), high-passed for a small speaker, trimmed, padded with 150 ms of silence at both ends,
# and loudness-normalised to the same RMS level so no prompt is quieter than another.
#
# Usage: sounds/make-prompts.sh [lang...]      (default: every catalogue file)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
target_rms_db=-20     # RMS level of the speech, dBFS
rate_wpm=140          # speaking rate, words per minute: slow and clear

for tool in espeak-ng sox awk; do
    command -v "$tool" >/dev/null || { echo "make-prompts: $tool is not installed" >&2; exit 1; }
done

if [ "$#" -eq 0 ]; then
    set -- $(cd "$here/catalogue" && ls *.tsv | sed 's/\.tsv$//')
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for lang in "$@"; do
    catalogue="$here/catalogue/$lang.tsv"
    [ -f "$catalogue" ] || { echo "make-prompts: no catalogue $catalogue" >&2; exit 1; }
    voice=$(awk -F'\t' '$1 == "voice" { print $2 }' "$catalogue")
    [ -n "$voice" ] || { echo "make-prompts: $catalogue has no voice line" >&2; exit 1; }
    mkdir -p "$here/$lang"
    grep -v '^#' "$catalogue" | grep -v '^voice	' | grep -v '^$' |
    while IFS='	' read -r stem text; do
        espeak-ng -v "$voice" -s "$rate_wpm" -w "$tmp/raw.wav" "$text"
        # Resample, band-limit for a small speaker, trim leading and trailing silence.
        sox -R "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$tmp/speech.wav" gain -6 \
            highpass 120 \
            silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
        rms=$(sox "$tmp/speech.wav" -n stats 2>&1 | awk '/^RMS lev dB/ { print $4 }')
        gain=$(awk -v t="$target_rms_db" -v r="$rms" 'BEGIN { printf "%.2f", t - r }')
        # `gain -l` limits peaks instead of clipping them.
        sox -R "$tmp/speech.wav" -b 16 "$here/$lang/$stem.wav" gain -l "$gain" pad 0.15 0.15
        echo "$lang/$stem.wav  rms ${rms} dB -> ${target_rms_db} dB"
    done
done
