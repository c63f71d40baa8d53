#!/usr/bin/env bash
# Runs Kiln's whole test suite on a fresh machine:
#   - installs what the tests need: PostgreSQL, chromium and chromedriver from Debian's
#     packages, the pinned Python packages (tests/python/requirements.txt) into ./.venv;
#   - starts a throwaway PostgreSQL and an S3-compatible server (moto) on 127.0.0.1;
#   - runs the Rust tests (the store suite on SQLite and PostgreSQL) and the Python tests
#     that drive the stock mlflow client and a headless browser against a real `kiln` server
#     (the studio's screenshots land in .test-artifacts/);
#   - stops everything it started.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
WORK="$(mktemp -d /tmp/kiln-test.XXXXXX)"
PIDS=()

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    if [ -n "${PG_CTL:-}" ] && [ -d "$WORK/pg" ]; then
        run_pg "$PG_CTL" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    for _ in $(seq 1 200); do
        if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))"; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# ---- PostgreSQL ---------------------------------------------------------------------------
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    log "installing PostgreSQL (Debian package)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
PG_CTL="$PG_BIN/pg_ctl"
# PostgreSQL refuses to run as root; use its own account then.
run_pg() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}
log "starting PostgreSQL on 127.0.0.1"
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK" "$WORK/pg"
chmod 755 "$WORK"
run_pg "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres --no-sync -E UTF8 >/dev/null
PG_PORT="$(free_port)"
run_pg "$PG_CTL" -D "$WORK/pg" -l "$WORK/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pg -c fsync=off -c max_connections=300" start >/dev/null
export KILN_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export KILN_REQUIRE_POSTGRES=1

# ---- Chromium and chromedriver (the studio's browser tests) --------------------------------
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromedriver (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
export KILN_TEST_ARTIFACTS="${KILN_TEST_ARTIFACTS:-$ROOT/.test-artifacts}"

# ---- Python test environment --------------------------------------------------------------
REQ=tests/python/requirements.txt
STAMP=".venv/.requirements.sha256"
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$(sha256sum "$REQ" | cut -d' ' -f1)" ]; then
    log "installing Python test packages into .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
    sha256sum "$REQ" | cut -d' ' -f1 > "$STAMP"
fi

# ---- S3-compatible server -----------------------------------------------------------------
log "starting an S3-compatible server (moto) on 127.0.0.1"
S3_PORT="$(free_port)"
.venv/bin/moto_server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$S3_PORT"
export KILN_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

# ---- Rust ---------------------------------------------------------------------------------
log "building"
cargo build --workspace --all-targets
log "Rust tests"
cargo test --workspace

# ---- Python: the stock mlflow client against a real kiln server ---------------------------
log "Python tests (stock mlflow client)"
export KILN_BIN="$CARGO_TARGET_DIR/debug/kiln"
export MLFLOW_HTTP_REQUEST_MAX_RETRIES=0
.venv/bin/python -m pytest tests/python -q -p no:cacheprovider "$@"
