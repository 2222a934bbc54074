#!/usr/bin/env bash
# A bounded schema-based fuzz run (schemathesis) of the HTTP surface against
# its own OpenAPI document: the debug binary on a random loopback port with a
# fresh database, every operation tried with generated input, and the run
# fails on any server error (5xx other than a documented one) or any status,
# content type or body the document does not describe.
# Usage: scripts/schemathesis.sh [max examples per operation, default 25].
# schemathesis is installed into a venv under ~/.cache/signhook on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES=${1:-25}
PG=${SCHEMATHESIS_PG:-postgres://postgres@127.0.0.1:5432}
DB=signhook_schemathesis_$$_$RANDOM
TOKEN=schemathesis-admin-token-0123456789
venv=${XDG_CACHE_HOME:-$HOME/.cache}/signhook/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi

# The binary the test build makes (features unified with the dev
# dependencies): after `cargo test` this builds nothing, where a plain
# `cargo build` would compile the dependency tree again.
cargo test --quiet --locked --no-run --test process 2>/dev/null
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Every provider configured, so webhooks are checked rather than refused
# for lack of set-up; no provider API (nothing leaves the machine).
env -i PATH="$PATH" \
    DATABASE_URL="$PG/$DB" \
    SIGNHOOK_LISTEN=127.0.0.1:0 \
    SIGNHOOK_LOG_FORMAT=json \
    SIGNHOOK_ADMIN_TOKEN=$TOKEN \
    SIGNHOOK_ADOBE_SIGN_CLIENT_IDS=schemathesis-client-id \
    SIGNHOOK_BOLDSIGN_SECRETS=schemathesis-boldsign-secret \
    SIGNHOOK_FUSESIGN_SIGNATURES=schemathesis-fusesign-signature \
    RUST_LOG=warn,signhook=info \
    target/debug/signhook serve >"$work/server.log" 2>&1 &
server_pid=$!
addr=
for _ in $(seq 1 300); do
    addr=$(grep -o '"message":"listening","addr":"[^"]*"' "$work/server.log" | head -n 1 | sed 's/.*"addr":"//; s/"$//' || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "signhook did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "signhook on $addr (database $DB); $MAX_EXAMPLES examples per operation"

# 503 is a documented answer (storage, deadline, shedding), never one this
# run should cause: `not_a_server_error` stays on.
# From the scratch directory: schemathesis keeps a cache where it runs.
status=0
cd "$work"
"$venv/bin/st" run "http://$addr/api/openapi.json" \
    --url "http://$addr" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed 11 \
    --request-timeout 10 \
    --header "Authorization: Bearer $TOKEN" \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "server log (last 40 lines):" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit "$status"
