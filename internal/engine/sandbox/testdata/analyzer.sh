#!/bin/bash
# A test analyzer for the sandbox engine. It reads the sample named by $1,
# writes a JSON report to $LAZARET_REPORT and exits 0 (clean) or 1
# (infected) — or misbehaves as the sample's first line asks:
#
#   EVIL                 infected: prints a signature, names others in the report
#   SLEEP n              sleeps n seconds first (timeouts)
#   CRASH                dies of SIGSEGV
#   EXIT n               exits n without a report
#   NOREPORT             exits 0 without a report
#   BIGREPORT n          writes an n-byte report
#   NET port             tries to connect to 127.0.0.1:port; the report says whether it could
#   WRITE                tries to overwrite the sample; the report says whether it could
#   FORK marker          leaves children named marker (one in a new session), then sleeps
#   FORKS n              forks n children that sleep; the report says how many forks worked
#   CPU                  spins until a limit stops it
#   FILESIZE n           writes an n-byte scratch file; the report says whether it could
#   ENV                  puts its environment in the report
#   WRITABLE             tries to create a file in each usual folder; the report lists where it could
set -u
sample="$1"
read -r cmd arg < "$sample" || true

report() { # verdict [extra JSON members]
  printf '{"analyzer": "test", "name": "%s", "size": %d, "uid": %d, "verdict": "%s"%s}\n' \
    "$LAZARET_SAMPLE_NAME" "$(wc -c < "$sample")" "$(id -u)" "$1" "${2:-}" > "$LAZARET_REPORT"
}

case "$cmd" in
EVIL)
  echo "Test.Evil.Stdout"
  report infected ', "signature": ["Test.Evil.One", "Test.Evil.Two"]'
  exit 1 ;;
SLEEP)
  sleep "$arg"
  report clean
  exit 0 ;;
CRASH)
  kill -SEGV $$ ;;
EXIT)
  echo "exiting $arg" >&2
  exit "$arg" ;;
NOREPORT)
  exit 0 ;;
BIGREPORT)
  head -c "$arg" /dev/zero | tr '\0' a > "$LAZARET_REPORT"
  exit 0 ;;
NET)
  if (exec 3<>"/dev/tcp/127.0.0.1/$arg") 2>/dev/null; then r=connected; else r=refused; fi
  report clean ", \"network\": \"$r\""
  exit 0 ;;
WRITE)
  if (echo overwritten > "$sample") 2>/dev/null; then r=written; else r=refused; fi
  report clean ", \"sample_write\": \"$r\""
  exit 0 ;;
FORK)
  (exec -a "$arg" sleep 300) &
  setsid bash -c 'exec -a "$0" sleep 300' "$arg" &
  sleep 300 ;;
FORKS)
  n=$(perl -e 'my $n = 0; for (1..$ARGV[0]) { my $p = fork(); last unless defined $p; if ($p == 0) { sleep 3; exit 0 } $n++ } print $n' "$arg")
  report clean ", \"forks\": $n"
  exit 0 ;;
CPU)
  while :; do :; done ;;
FILESIZE)
  trap '' XFSZ
  if head -c "$arg" /dev/zero > "$HOME/scratch" 2>/dev/null; then r=written; else r=refused; fi
  report clean ", \"file\": \"$r\""
  exit 0 ;;
ENV)
  env | sort > "$LAZARET_REPORT"
  exit 0 ;;
WRITABLE)
  w=""
  for d in / /dev /dev/shm /etc /input /output /proc /tmp /usr /var; do
    if (: > "$d/.lazaret-writable") 2>/dev/null; then w="$w${w:+, }\"$d\""; fi
  done
  report clean ", \"writable\": [$w]"
  exit 0 ;;
*)
  report clean
  exit 0 ;;
esac
