#!/bin/sh
# Builds the DC-09 AES-CBC known-answer frames in dc09_vectors.txt with OpenSSL and Python,
# independently of Vigil's own code. Each line: key hex, then the complete frame with
# LF and CR written as \n and \r.
set -eu
TAIL='#1234|1101 01 003][IBedroom: help button pressed]_14:30:00,11-25-2026'
crc() { python3 -c '
import sys
crc = 0
for b in sys.argv[1].encode():
    crc ^= b
    for _ in range(8):
        crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
print("%04X%04X" % (crc, len(sys.argv[1])))' "$1"; }
N=$(printf '%s' "$TAIL" | wc -c)
PADLEN=$(( 16 - (N + 1) % 16 ))
PAD=$(printf '%*s' "$PADLEN" '' | tr ' ' 'Q')
for KEY in 30313233343536373839414243444546 \
           000102030405060708090A0B0C0D0E0F1011121314151617 \
           603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4; do
  BITS=$(( ${#KEY} * 4 ))
  HEX=$(printf '%s|%s' "$PAD" "$TAIL" | openssl enc -aes-$BITS-cbc -K "$KEY" -iv 00000000000000000000000000000000 -nopad | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)
  BODY="\"*ADM-CID\"0001R1L1#1234[$HEX"
  printf "%s %s%s%s%s\n" "$KEY" "\\n" "$(crc "$BODY")" "$BODY" "\\r"
done
BODY="\"ADM-CID\"0001R1L1#1234[$TAIL"
printf "%s %s%s%s%s\n" plain "\\n" "$(crc "$BODY")" "$BODY" "\\r"
echo "pad $PAD"
