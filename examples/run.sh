#!/usr/bin/env bash
# Generates each client example's stubs from proto/, builds it, and runs it against its own throwaway
# identityd (examples/serve.py). A contract change that breaks a generated client fails here.
#
#   examples/run.sh                      python, typescript and go
#   examples/run.sh python typescript    just those
#
# Installs what it needs from the registries: the Python packages into examples/python/.venv (pip),
# the TypeScript packages from package-lock.json (npm ci), and Go with its gRPC and protobuf packages
# from Debian (apt-get, as root) when `go` or those packages are missing. The identityd binary is
# $IDENTITYD_BIN, or target/debug/identityd built by `cargo build`.
set -euo pipefail
cd "$(dirname "$0")"
EXAMPLES=$PWD
PROTO=$EXAMPLES/../proto
VENV=$EXAMPLES/python/.venv

log() { printf '== %s\n' "$*"; }

python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r python/requirements.txt
}

# Runs a command against a fresh server; serve.py needs the venv's grpcio.
serve() {
  "$VENV/bin/python" "$EXAMPLES/serve.py" -- "$@"
}

run_python() {
  rm -rf python/gen && mkdir -p python/gen
  "$VENV/bin/python" -m grpc_tools.protoc -I"$PROTO" \
    --python_out=python/gen --pyi_out=python/gen --grpc_python_out=python/gen \
    "$PROTO"/identity/v1/*.proto
  serve "$VENV/bin/python" python/client.py
}

run_typescript() {
  (
    cd typescript
    npm ci --no-audit --no-fund --loglevel=error
    rm -rf src/gen dist
    # Generates the types from proto/ and type-checks the example against them (tsc, strict).
    npm run --silent build
  )
  serve node typescript/dist/client.js
}

# Debian's Go and its gRPC packages (the Go module proxy is not needed: the packages are built from
# /usr/share/gocode in GOPATH mode).
GO_DEBS=(golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-genproto-dev
  golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev)
GOCODE=/usr/share/gocode

go_env() {
  if command -v go >/dev/null && command -v protoc-gen-go-grpc >/dev/null &&
    [ -d "$GOCODE/src/google.golang.org/grpc" ] && [ -d "$GOCODE/src/google.golang.org/genproto" ]; then
    return
  fi
  log "installing Go and its gRPC packages from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${GO_DEBS[@]}" >/dev/null
}

run_go() {
  if ! command -v buf >/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check buf-bin
  fi
  local buf
  buf=$(command -v buf || echo "$VENV/bin/buf")
  rm -rf go/gen
  (cd go && "$buf" generate)
  # GOPATH mode: the example is the package identityd.example/client (the import path buf.gen.yaml
  # gives the generated code) in a GOPATH of its own, beside Debian's.
  local gopath=$EXAMPLES/go/.gopath
  rm -rf "$gopath" && mkdir -p "$gopath/src/identityd.example" "$gopath/bin"
  ln -s "$EXAMPLES/go" "$gopath/src/identityd.example/client"
  (
    cd "$gopath/src/identityd.example/client"
    export GO111MODULE=off GOPATH="$gopath:$GOCODE" GOFLAGS=
    go vet .
    go build -o "$gopath/bin/client" .
  )
  serve "$gopath/bin/client"
}

languages=("$@")
if [ ${#languages[@]} -eq 0 ]; then
  languages=(python typescript go)
fi

python_env
for language in "${languages[@]}"; do
  start=$SECONDS
  log "$language example"
  case $language in
    python) run_python ;;
    typescript) run_typescript ;;
    go) go_env && run_go ;;
    *)
      echo "unknown example: $language (python, typescript or go)" >&2
      exit 2
      ;;
  esac
  log "$language example: $((SECONDS - start)) s"
done
