#!/usr/bin/env bash
# Builds Silero's native kernel, media/vad/native/build/libsilero_vad.so, from
# media/vad/native/silero_vad.c (media/vad/silero-engine.ts loads it through koffi). Run by
# scripts/setup.sh; idempotent: rebuilds only when the source or this script changed.
# One binary for any x86-64: the hot loop is compiled for AVX-512, AVX2+FMA and baseline x86-64,
# and the loader picks the best the CPU has (GCC target_clones); elsewhere, the compiler's default.
set -euo pipefail
cd "$(dirname "$0")/.."

src=media/vad/native/silero_vad.c
out=media/vad/native/build/libsilero_vad.so

if [[ -f $out && $out -nt $src && $out -nt scripts/build-native.sh ]]; then
  printf 'build-native: %s up to date\n' "$out"
  exit 0
fi
command -v cc >/dev/null || { printf 'build-native: ERROR: no C compiler (cc): install Debian'"'"'s gcc and libc6-dev\n' >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# -fopenmp-simd: the inner products' reductions may be vectorised (no OpenMP runtime is used).
cc -std=c11 -O3 -fopenmp-simd -ffp-contract=fast -fno-math-errno -fPIC -shared -Wall -Wextra -Werror \
  -o "$out.tmp" "$src" -lm
mv "$out.tmp" "$out"
printf 'build-native: built %s\n' "$out"
