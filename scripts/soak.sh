#!/usr/bin/env bash
# Soak: a million requests through a real lab, 100% mirrored to a shadow that resets 10% of
# its connections and stalls 1% of its answers. Prints memory, file descriptors, live tasks
# and throughput every tenth of the run, then the counts, and fails if memory kept growing,
# anything leaked, or the counts do not add up. Not part of CI: it takes minutes.
#
#   scripts/soak.sh                 # 1,000,000 requests, 32 clients, debug build
#   SOAK_REQUESTS=100000 scripts/soak.sh
#   SOAK_PROFILE=release scripts/soak.sh   # faster requests, much longer first build
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_REQUESTS="${SOAK_REQUESTS:-1000000}"
export SOAK_CLIENTS="${SOAK_CLIENTS:-32}"
profile=()
[ "${SOAK_PROFILE:-dev}" = "release" ] && profile=(--release)
exec cargo test "${profile[@]}" --locked --test hardening_soak -- --ignored --nocapture
