#!/usr/bin/env bash
# Benchmark the clamd engine against a naive raw INSTREAM client, side by
# side on one clamd: files/s at concurrency 1, 4 and 8 and the ratio.
#
#   bench/clamd/run.sh                 # starts a clamd with the test signatures
#   bench/clamd/run.sh -network unix   # both over clamd's unix socket: the engine passes descriptors
#   LAZARET_BENCH_CLAMD=tcp://127.0.0.1:3310 bench/clamd/run.sh -n 5000
#
# Extra arguments go to the Go program (-n, -size, -conc, -rounds, -addr, -network).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -z "${LAZARET_BENCH_CLAMD:-}" ]] && ! command -v clamd >/dev/null && [[ ! -x /usr/sbin/clamd ]]; then
	# A bare machine: install clamd the way INFRA.md says (Debian).
	apt-get update
	apt-get -o DPkg::Lock::Timeout=600 install -y clamav-daemon
fi
exec go run ./bench/clamd "$@"
