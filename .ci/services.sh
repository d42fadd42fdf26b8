# Starts the real services lazaret's tests and benchmarks use, as plain
# processes on 127.0.0.1 with free ports, under one folder that is removed
# (and every process stopped) when the sourcing script exits. Source it
# from the repository root, then call the start_* functions you need; each
# exports the address in the variable the tests read.
#   . .ci/services.sh; start_clamd; start_rabbitmq

LZ=$(mktemp -d /tmp/lazaret-svc.XXXXXX)
chmod 755 "$LZ"
pids=()
lz_cleanup() {
  [ -n "${RMQ_PID:-}" ] && kill -- -"$RMQ_PID" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$LZ/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D "$LZ/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$LZ"
}
trap lz_cleanup EXIT

go build -o "$LZ/lztest" ./internal/testenv/lztest
free_port() { "$LZ/lztest" free-port; }

# start_clamd [extra clamd.conf lines...]: clamd with the test signatures.
start_clamd() {
  mkdir -p "$LZ/clamd/tmp"
  "$LZ/lztest" sigs "$LZ/clamd/sigs"
  CLAMD_PORT=$(free_port)
  cat > "$LZ/clamd/clamd.conf" <<CONF
Foreground yes
LogFile $LZ/clamd/clamd.log
TemporaryDirectory $LZ/clamd/tmp
DatabaseDirectory $LZ/clamd/sigs
LocalSocket $LZ/clamd/clamd.sock
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
StreamMaxLength 200M
MaxFileSize 200M
MaxScanSize 400M
AlertExceedsMax yes
AlertEncrypted yes
MaxThreads 12
CONF
  for line in "$@"; do echo "$line" >> "$LZ/clamd/clamd.conf"; done
  clamd -c "$LZ/clamd/clamd.conf" > "$LZ/clamd/stdout.log" 2>&1 &
  pids+=($!)
  "$LZ/lztest" wait-clamd "$CLAMD_PORT"
  export LAZARET_TEST_CLAMD="tcp://127.0.0.1:$CLAMD_PORT"
}

start_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_PORT=$(free_port)
  install -d -o postgres -g postgres "$LZ/pg" "$LZ/pg/data" "$LZ/pg/sock"
  runuser -u postgres -- "$bin/initdb" -D "$LZ/pg/data" -N -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$LZ/pg/data" -l "$LZ/pg/pg.log" -w \
    -o "-k $LZ/pg/sock -c listen_addresses=127.0.0.1 -p $PG_PORT -c fsync=off -c max_connections=200" start >/dev/null
  export LAZARET_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
}

start_nats() {
  NATS_PORT=$(free_port)
  mkdir -p "$LZ/nats"
  nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$LZ/nats" >"$LZ/nats/nats.log" 2>&1 &
  pids+=($!)
  export LAZARET_TEST_NATS="nats://127.0.0.1:$NATS_PORT"
}

# start_rabbitmq: an isolated node on free loopback ports, its user preloaded
# from a definitions file (no rabbitmqctl calls); boot takes 5-24 s. User
# lazaret, password lazaret: password_hash = base64(salt "lzr1" + sha256(salt + password)).
start_rabbitmq() {
  local R="$LZ/rmq"; mkdir -p "$R/home" "$R/log" "$R/mnesia"
  RMQ_PORT=$(free_port); local dist epmd; dist=$(free_port); epmd=$(free_port)
  cat > "$R/defs.json" <<JSON
{"users": [{"name": "lazaret", "password_hash": "bHpyMQcAQOZ4qeETjpK1L3o3L+u7DBX55dBJPRVal0Sl9u1w",
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}],
 "vhosts": [{"name": "/"}],
 "permissions": [{"user": "lazaret", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}
JSON
  printf 'listeners.tcp.default = 127.0.0.1:%s\nload_definitions = %s\n' "$RMQ_PORT" "$R/defs.json" > "$R/rabbitmq.conf"
  echo '[].' > "$R/enabled_plugins"
  epmd -address 127.0.0.1 -port "$epmd" & pids+=($!)
  HOME=$R/home RABBITMQ_NODENAME=lzsvc@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT=$RMQ_PORT RABBITMQ_DIST_PORT=$dist ERL_EPMD_PORT=$epmd \
  RABBITMQ_MNESIA_BASE=$R/mnesia RABBITMQ_LOG_BASE=$R/log RABBITMQ_CONFIG_FILE=$R/rabbitmq.conf \
  RABBITMQ_ENABLED_PLUGINS_FILE=$R/enabled_plugins ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$R/stdout.log" 2>&1 & RMQ_PID=$!
  "$LZ/lztest" wait-amqp "$RMQ_PORT" || { cat "$R/stdout.log"; return 1; }
  export LAZARET_TEST_AMQP="amqp://lazaret:lazaret@127.0.0.1:$RMQ_PORT/"
}
