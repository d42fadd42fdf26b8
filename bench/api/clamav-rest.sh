#!/usr/bin/env bash
# Builds the baseline of bench/api/run.sh's CLAMAV_REST_BIN: clamav-rest, the
# public REST front-end for clamd (MIT, https://github.com/ajilach/clamav-rest).
#
#   bash bench/api/clamav-rest.sh SRC_DIR OUT_BIN
#
# SRC_DIR is a checkout of github.com/ajilach/clamav-rest; the numbers in
# docs/BENCHMARKS.md are from commit d7f558ef3f1e13926639633129ec68eea7e50af6:
#   git clone https://github.com/ajilach/clamav-rest SRC_DIR
#   git -C SRC_DIR checkout d7f558ef3f1e13926639633129ec68eea7e50af6
# It is built from source because the Go module proxy does not serve it
# (`go get github.com/ajilach/clamav-rest` is refused here), and never
# vendored into this repository. Its dependencies (github.com/dutchcoders/
# go-clamd, prometheus/client_golang, rs/cors) come through the module proxy.
# The build runs on a copy of the package's top-level files in a temporary
# directory, in clamav-rest's own module, so neither SRC_DIR nor lazaret's
# go.mod is touched.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 SRC_DIR OUT_BIN  (SRC_DIR: a checkout of github.com/ajilach/clamav-rest)" >&2
  exit 2
fi
src=$(realpath "$1")
out=$(realpath -m "$2")
if ! grep -qx 'module github.com/ajilach/clamav-rest' "$src/go.mod" 2>/dev/null || [ ! -f "$src/clamrest.go" ]; then
  echo "$src is not a checkout of github.com/ajilach/clamav-rest (no clamrest.go, or go.mod names another module)" >&2
  exit 1
fi
if git -C "$src" rev-parse HEAD >/dev/null 2>&1; then
  echo "clamav-rest commit: $(git -C "$src" rev-parse HEAD)"
else
  echo "clamav-rest: $src is not a git checkout, commit unknown"
fi
tmp=$(mktemp -d /tmp/clamav-rest-build.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp "$src"/go.mod "$src"/*.go "$tmp"/
rm -f "$tmp"/*_test.go
if [ -f "$src/go.sum" ]; then cp "$src/go.sum" "$tmp"/; fi
# -mod=mod: fill in go.sum from the module proxy and checksum database if
# the checkout's is missing or incomplete.
(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$out" .)
echo "built $out"
