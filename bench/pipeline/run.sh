#!/usr/bin/env bash
# Pipeline memory on a large sample: `lazaret scan` of one 1 GiB file
# through the builtin engine (and through clamd when LAZARET_BENCH_CLAMD is
# set to a clamd whose StreamMaxLength allows it), reporting wall time and
# peak RSS. Target: peak RSS < 100 MiB.
#
#   bash bench/pipeline/run.sh            # SIZE_MB=1024 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MB=${SIZE_MB:-1024}
W=$(mktemp -d /tmp/lazaret-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
go build -o "$W/lazaret" ./cmd/lazaret
go build -o "$W/rss" ./bench/rss
head -c $((SIZE_MB << 20)) /dev/urandom > "$W/big.bin"
printf 'limits: {max_size: 4GiB}\nengines:\n  - {name: builtin, type: builtin}\n' > "$W/builtin.yaml"
echo "== builtin engine, ${SIZE_MB} MiB"
TMPDIR=$W "$W/rss" -- "$W/lazaret" scan --config "$W/builtin.yaml" "$W/big.bin"
if [ -n "${LAZARET_BENCH_CLAMD:-}" ]; then
  printf 'limits: {max_size: 4GiB}\nengines:\n  - {name: clamav, type: clamd, address: %s, timeout: 10m}\n' "$LAZARET_BENCH_CLAMD" > "$W/clamd.yaml"
  echo "== clamd engine, ${SIZE_MB} MiB"
  TMPDIR=$W "$W/rss" -- "$W/lazaret" scan --config "$W/clamd.yaml" "$W/big.bin" || true
fi
