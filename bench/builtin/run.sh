#!/usr/bin/env bash
# Times clamscan and lazaret's builtin engine side by side, in one run, on
# the same signatures (1,000 random .ndb body signatures, 10,000 .hdb
# hashes) and the same files (64 x 16 MiB of fresh random bytes, 4 with a
# body signature match, 1 caught by its hash), checks that both report the
# same detections, and prints MB/s for each and the ratio.
#
# Usage: bench/builtin/run.sh            (data in /tmp, never in the repo)
# Env:   BENCH_DIR (default /tmp/lazaret-bench-builtin), FILES, SIZE,
#        INFECTED, NDB, HDB, ROUNDS (runs of each tool, alternating; the
#        best counts), KEEP=1 to keep the data.
set -euo pipefail

cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-/tmp/lazaret-bench-builtin}
FILES=${FILES:-64}
SIZE=${SIZE:-16777216}
INFECTED=${INFECTED:-4}
NDB=${NDB:-1000}
HDB=${HDB:-10000}
ROUNDS=${ROUNDS:-2}
CLAMSCAN=${CLAMSCAN:-/usr/bin/clamscan}

rm -rf "$W"
mkdir -p "$W"
trap '[ "${KEEP:-}" = 1 ] || rm -rf "$W/data"' EXIT

go build -o "$W/bench" ./bench/builtin
"$W/bench" gen -sigs "$W/sigs" -data "$W/data" -files "$FILES" -size "$SIZE" \
	-infected "$INFECTED" -ndb "$NDB" -hdb "$HDB"
bytes=$(du -sb "$W/data" | cut -f1)
# Both tools read from the page cache: warm it once.
cat "$W"/data/* > /dev/null

# run NAME CMD...: runs CMD, output to $W/NAME.out, "wall user sys"
# seconds to $W/NAME.time. Exit 1 (something found) is success.
run() {
	local name=$1 st=0
	shift
	local TIMEFORMAT='%R %U %S'
	{ time "$@" > "$W/$name.out" 2> "$W/$name.err"; } 2> "$W/$name.time" || st=$?
	if [ "$st" -gt 1 ]; then
		echo "FAIL: $name exited $st:" >&2
		cat "$W/$name.err" >&2
		exit 1
	fi
}
# The machine may be shared: the best round counts, and CPU time (user +
# sys) is shown beside wall time because it suffers less from other load.
best() { awk -v x="$1" -v y="${2:-$1}" 'BEGIN { print (x < y ? x : y) }'; }
for round in $(seq "$ROUNDS"); do
	run clamscan "$CLAMSCAN" --no-summary -d "$W/sigs" "$W/data"
	run lazaret "$W/bench" scan -d "$W/sigs" "$W/data"
	read -r cw cu cs < "$W/clamscan.time"
	read -r lw lu ls < "$W/lazaret.time"
	cc=$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')
	lc=$(awk -v u="$lu" -v s="$ls" 'BEGIN { print u + s }')
	printf 'round %d: clamscan %.2fs wall %.2fs cpu, lazaret %.2fs wall %.2fs cpu\n' "$round" "$cw" "$cc" "$lw" "$lc"
	bcw=$(best "$cw" "${bcw:-}")
	bcc=$(best "$cc" "${bcc:-}")
	blw=$(best "$lw" "${blw:-}")
	blc=$(best "$lc" "${blc:-}")
done

# Same detections: clamscan's FOUND lines, lazaret's, and what gen planted.
grep ' FOUND$' "$W/clamscan.out" | sort > "$W/clamscan.found" || true
grep ' FOUND$' "$W/lazaret.out" | sort > "$W/lazaret.found" || true
if ! diff -u "$W/clamscan.found" "$W/lazaret.found"; then
	echo "FAIL: clamscan and lazaret disagree (above)" >&2
	exit 1
fi
if ! diff -u "$W/expected.txt" "$W/lazaret.found"; then
	echo "FAIL: detections differ from the planted ones (above)" >&2
	exit 1
fi
echo "detections agree: $(wc -l < "$W/lazaret.found") files infected, $(grep -c ': OK$' "$W/clamscan.out") clean"

awk -v b="$bytes" -v n="$(ls "$W/data" | wc -l)" -v cw="$bcw" -v cc="$bcc" -v lw="$blw" -v lc="$blc" 'BEGIN {
	printf "data: %.0f MiB in %d files; best of %d rounds\n", b / 1048576, n, '"$ROUNDS"'
	printf "clamscan: %6.2fs wall %7.1f MB/s   %6.2fs cpu %7.1f MB/s\n", cw, b / cw / 1e6, cc, b / cc / 1e6
	printf "lazaret:  %6.2fs wall %7.1f MB/s   %6.2fs cpu %7.1f MB/s\n", lw, b / lw / 1e6, lc, b / lc / 1e6
	printf "ratio lazaret/clamscan: %.2fx wall, %.2fx cpu\n", cw / lw, cc / lc
}'
