#!/usr/bin/env bash
# Regenerates tests/fixtures/speech-16k.wav (committed; this script documents how it was made).
# Needs Debian's espeak-ng and sox.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp --suffix=.wav)
espeak-ng -v en-us -s 160 -w "$tmp" "This is a test of the voice session server"
sox "$tmp" -r 16000 -c 1 -b 16 tests/fixtures/speech-16k.wav pad 0.3 0.3
rm -f "$tmp"
