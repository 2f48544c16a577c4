#!/usr/bin/env bash
# Offline session-JWT verification against ValidateSession, in the same run: a release server on
# SQLite in a temporary data directory, validate before and after, verification in between.
# DUR=10s by default. Needs `cargo build --release --workspace --bins` first.
set -u
cd "$(dirname "$0")/.."
D=$(mktemp -d /tmp/jwtbench.XXXX)
PW="a long phrase for measuring"
IDENTITYD_DATA_DIR=$D IDENTITYD_LISTEN=127.0.0.1:50077 IDENTITYD_BOOTSTRAP_TENANT=Bench \
  IDENTITYD_BOOTSTRAP_USER=ops IDENTITYD_BOOTSTRAP_PASSWORD="$PW" RUST_LOG=warn \
  target/release/identityd > $D/server.log 2>&1 &
SERVER=$!
sleep 2
T=http://127.0.0.1:50077
L=target/release/identityd-load
export IDENTITYD_LOAD_PASSWORD="$PW"
$L run --target $T --scenario validate --duration ${DUR:-10s} --user ops
$L jwt-verify --target $T --duration ${DUR:-10s} --user ops
$L run --target $T --scenario validate --duration ${DUR:-10s} --user ops
kill -TERM $SERVER; wait $SERVER

rm -rf "$D"
