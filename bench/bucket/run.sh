#!/usr/bin/env bash
# Bucket scanning end to end, side by side with raw clamd on one clamd:
# PUT into MinIO -> event through RabbitMQ (bucket-av-scanner's topology)
# -> lazaret (configured with bucket-av-scanner's variables) -> clamd ->
# verdict tag -> webhook. Prints objects/s against raw INSTREAM (target
# ratio >= 0.8), PUT->tag p50/p99 at half the saturation rate (target p99
# < 250 ms), and lazaret's peak RSS.
#
#   bash bench/bucket/run.sh                # N=500 objects of SIZE=16384 bytes, C=8 concurrent PUTs
#   SIZE=1048576 N=200 bash bench/bucket/run.sh
#   EVENTS=uploads bash bench/bucket/run.sh  # subscribe to uploads only, not to tag writes
#   MINIO_QUEUE_DIR=1 bash bench/bucket/run.sh  # MinIO keeps events in a queue dir before sending
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-500}; SIZE=${SIZE:-16384}; C=${C:-8}
EVENTS=${EVENTS:-all}   # all: bucket-av-scanner's subscription; uploads: the one docs/MIGRATION.md advises
. .ci/services.sh
start_clamd
start_rabbitmq
MINIO_BIN=${LAZARET_MINIO_BIN:-$(command -v minio || echo "$HOME/go/bin/minio")}
go build -o "$LZ/lazaret" ./cmd/lazaret
go build -o "$LZ/bucketbench" ./bench/bucket

MP=$(free_port); MCP=$(free_port)
MINIO_ROOT_USER=benchadmin MINIO_ROOT_PASSWORD=bench-secret-0123 MINIO_BROWSER=off MINIO_UPDATE=off \
MINIO_NOTIFY_AMQP_ENABLE_PRIMARY=on MINIO_NOTIFY_AMQP_URL_PRIMARY="$LAZARET_TEST_AMQP" \
MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY=s3minioscan MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY=topic \
MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY=bucket_notifications MINIO_NOTIFY_AMQP_DURABLE_PRIMARY=on \
MINIO_NOTIFY_AMQP_DELIVERY_MODE_PRIMARY=2 \
  env ${MINIO_QUEUE_DIR:+MINIO_NOTIFY_AMQP_QUEUE_DIR_PRIMARY="$LZ/minio-events"} "$MINIO_BIN" server "$LZ/minio" --quiet --address "127.0.0.1:$MP" --console-address "127.0.0.1:$MCP" --certs-dir "$LZ/minio-certs" &
MINIO_PID=$!; pids+=($!)
until curl -sf "http://127.0.0.1:$MP/minio/health/ready" >/dev/null; do sleep 0.2; done

# The bench program's webhook receiver must be known before lazaret starts.
rm -f "$LZ/ready"
"$LZ/bucketbench" -s3 "127.0.0.1:$MP" -user benchadmin -pass bench-secret-0123 -clamd "$LAZARET_TEST_CLAMD" \
  -n "$N" -size "$SIZE" -c "$C" -ready-file "$LZ/ready" -watch-file "$LZ/watch" &
BENCH=$!
until [ -s "$LZ/ready" ]; do sleep 0.1; done
HOOK=$(cat "$LZ/ready")

CP=${LAZARET_TEST_CLAMD##*:}
AP=${LAZARET_TEST_AMQP##*:}; AP=${AP%/}
LP=$(free_port)
MINIO_SERVER_URL="http://127.0.0.1:$MP" MINIO_USER_NAME=benchadmin MINIO_USER_PASSWORD=bench-secret-0123 \
MINIO_BUCKET_NAME=storagebucket RABBITMQ_ENDPOINT=127.0.0.1 LAZARET_AMQP_PORT="$AP" \
RABBITMQ_REGULAR_USER_NAME=lazaret RABBITMQ_REGULAR_USER_PASS=lazaret RABBITMQ_QUEUE_NAME=s3minioqueue \
RABBITMQ_TOPIC=s3minioscan RABBITMQ_QUEUE_ROUTING_KEY=bucket_notifications \
CLAMD_ENDPOINT=127.0.0.1 CLAMD_PORT="$CP" DELETE_FILE=true TAG_FILES=true REPORT_CLEAN=true PUBLISH_URL="$HOOK" \
LAZARET_LISTEN="127.0.0.1:$LP" LAZARET_DATA_DIR="$LZ/lazaret-data" LAZARET_LOG_LEVEL=error LAZARET_WORKERS=8 LAZARET_DEBUG_LISTEN=${DEBUG_LISTEN:-} \
  "$LZ/lazaret" serve &
LPID=$!; pids+=($LPID)
until curl -sf "http://127.0.0.1:$LP/readyz" >/dev/null; do
  kill -0 $LPID 2>/dev/null || { echo "lazaret exited" >&2; exit 1; }
  sleep 0.1
done

# Bucket and its event subscription, as bucket-av-scanner's init does.
"$LZ/bucketbench" -setup -events "$EVENTS" -s3 "127.0.0.1:$MP" -user benchadmin -pass bench-secret-0123
sleep 1
# Report CPU per object of every process on the path.
BEAM=$(pgrep -s "$RMQ_PID" -x beam.smp | head -1 || true)
CLAMD_PID=$(pgrep -f "clamd -c $LZ/clamd" | head -1 || true)
echo "lazaret=$LPID,minio=$MINIO_PID,rabbitmq=$BEAM,clamd=$CLAMD_PID,bench=$BENCH" > "$LZ/watch"
rm -f "$LZ/ready"            # go
wait $BENCH
echo "lazaret peak RSS: $(grep VmHWM /proc/$LPID/status | awk '{print $2/1024 " MiB"}')"
