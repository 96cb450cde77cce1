#!/usr/bin/env bash
# Prepares a Debian 12 machine (a developer's or CI's) to build, run and test the project:
# the Debian packages it needs, node_modules and the demo page bundle. Idempotent and
# non-interactive; quick when everything is already there.
#   libopus0  the server's Opus codec, loaded through koffi
#   chromium  the browser that the e2e tests drive (/usr/bin/chromium)
#   libpocketsphinx3 pocketsphinx-en-us  the local speech-to-text (loaded through koffi) and its
#               US English model (/usr/share/pocketsphinx/model/en-us)
#   prometheus  for promtool: the deploy test checks the Prometheus config and runs the alert-rule tests
#   gcc libc6-dev  to compile Silero's native kernel (scripts/build-native.sh), once per checkout
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(libopus0 libpocketsphinx3 pocketsphinx-en-us chromium prometheus gcc libc6-dev)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

command -v dpkg-query >/dev/null || die "dpkg-query not found: this script expects Debian 12"

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  log "Debian packages present: ${DEBIAN_PACKAGES[*]}"
else
  if [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages: ${missing[*]}; install them as root: apt-get update && apt-get install -y ${missing[*]}"
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null || die "apt-get update failed; cannot install ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" </dev/null \
    || die "apt-get install failed for: ${missing[*]}"
  for pkg in "${missing[@]}"; do
    installed "$pkg" || die "$pkg is still not installed after apt-get install"
  done
  log "installed: ${missing[*]}"
fi

command -v node >/dev/null || die "node not found: install Node.js 20 or newer"
command -v npm >/dev/null || die "npm not found: install Node.js 20 or newer"

# npm ci rewrites node_modules/.package-lock.json, so a lock file newer than it means the
# dependencies changed since the last install.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  # onnxruntime-node's install script would fetch CUDA files from the internet; its CPU build is
  # in the npm tarball, which is all we use.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund </dev/null || die "npm ci failed"
else
  log "node_modules up to date (skipping npm ci)"
fi

log "building Silero's native kernel"
bash scripts/build-native.sh </dev/null || die "scripts/build-native.sh failed"

log "building the client bundle"
npm run --silent build:client </dev/null || die "npm run build:client failed"
log "done"
