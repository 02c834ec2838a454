#!/usr/bin/env bash
# Benchmarks mirrorlab against direct access and against nginx (plain proxy and `mirror`),
# all on 127.0.0.1. Installs wrk and nginx (with the echo module for the slow shadow) from
# Debian's packages when missing, builds mirrorlab in release mode, then runs scripts/bench.py.
#   scripts/bench.sh [--duration S] [--soak] [--cases A,B,...]   (H: the bare hyper floor)
#   scripts/bench.sh --callgrind D     instructions per request under valgrind (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need+=(libnginx-mod-http-echo)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian package starts a system nginx on port 80; the benchmark runs its own instances.
pgrep -f "nginx: master process /usr/sbin/nginx" >/dev/null && { service nginx stop >/dev/null 2>&1 || true; }
cargo build --release --quiet --bin mirrorlab --example bare_proxy
target="${CARGO_TARGET_DIR:-target}/release"
exec python3 scripts/bench.py --mirrorlab "$target/mirrorlab" --bare-proxy "$target/examples/bare_proxy" "$@"
