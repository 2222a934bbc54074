#!/usr/bin/env bash
# Repeatable benchmark of a release build against the local PostgreSQL:
# `signhook simulate load` at 32 and 128 connections, with the server's idle
# and peak RSS and the CPU the server and PostgreSQL spent per event.
# Usage: scripts/bench.sh [duration, default 30s]; BENCH_CONNECTIONS="32 128"
# picks the connection counts. Results go to stdout and
# target/bench/*.json. Run it on a quiet machine; see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-30s}
PORT=${BENCH_PORT:-18080}
DB=${BENCH_DB:-signhook_bench}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
OUT=target/bench
mkdir -p "$OUT"

cargo build --release --quiet
BIN=target/release/signhook

export SIGNHOOK_ADOBE_SIGN_CLIENT_IDS=bench-client
export SIGNHOOK_ADMIN_TOKEN=bench-admin-token-0123456789
export SIGNHOOK_LOG_FORMAT=json
# Production-like logging: one INFO line per request, written to a file.
export RUST_LOG=${RUST_LOG:-info,sqlx=warn}

# With SIGNHOOK_WORKER_CONCURRENCY=0 the server only receives: ingest alone.
VERIFY=--verify
if [ "${SIGNHOOK_WORKER_CONCURRENCY:-}" = 0 ]; then VERIFY=; fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# PostgreSQL work for this run: the benchmark database's backends plus the
# shared WAL writer, checkpointer and background writer.
pg_ticks() {
    local pids
    pids=$(psql "$PG/postgres" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'
                                      OR backend_type IN ('walwriter', 'checkpointer', 'background writer')")
    for pid in $pids; do ticks "$pid" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
rss_kib() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }

run() {
    local connections=$1 name="load-$1"
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    DATABASE_URL="$PG/$DB" SIGNHOOK_LISTEN="127.0.0.1:$PORT" "$BIN" serve >"$OUT/$name.server.log" 2>&1 &
    local server=$!
    trap "kill $server 2>/dev/null" EXIT
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
    sleep 1
    local idle_rss server0 pg0
    idle_rss=$(rss_kib $server VmRSS)
    server0=$(ticks $server)
    pg0=$(pg_ticks)
    /usr/bin/time -o "$OUT/$name.sim-cpu" -f "%U %S" "$BIN" simulate load --url "http://127.0.0.1:$PORT" --connections "$connections" \
        --duration "$DURATION" $VERIFY --timeout 120s --json >"$OUT/$name.json" || true
    local server_ticks=$(( $(ticks $server) - server0 )) pg_ticks_used=$(( $(pg_ticks) - pg0 ))
    local peak_rss
    peak_rss=$(rss_kib $server VmHWM)
    kill -TERM $server
    wait $server || true
    python3 - "$OUT/$name.json" "$connections" "$idle_rss" "$peak_rss" "$server_ticks" "$pg_ticks_used" \
        "$(cat "$OUT/$name.sim-cpu")" <<'PY'
import json, sys
path, connections, idle, peak, server, pg, sim = sys.argv[1:]
sim = sum(float(x) for x in sim.split()) * 1e6
r = json.load(open(path))
n = max(r["new_acknowledged"], 1)
print(f"{connections:>4} connections: {r['acks_per_sec']:,.0f} acks/s, "
      f"p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms, max {r['latency_ms']['max']} ms, "
      f"{r['rejected']} rejected, {r['unavailable']} unavailable")
proc = r.get("processing") or {}
if not proc:
    print("      receive-only server: nothing processed")
secs = proc.get("secs") or float("nan")
state = "processed all" if proc.get("complete") else "NOT all processed:"
if proc: print(f"      {state} {r['new_acknowledged']:,} events {secs:.2f} s after the first send "
      f"(sending took {r['elapsed_secs']:.2f} s): end-to-end {r['new_acknowledged'] / secs:,.0f} events/s")
print(f"      server RSS idle {int(idle)/1024:.1f} MiB, peak {int(peak)/1024:.1f} MiB; "
      f"CPU per event: server {int(server)*10_000/n:.0f} µs, PostgreSQL {int(pg)*10_000/n:.0f} µs, "
      f"simulator {sim/n:.0f} µs")
PY
}

echo "signhook benchmark, $(nproc) cores, $(date -u +%FT%TZ), $DURATION per run"
for connections in ${BENCH_CONNECTIONS:-32 128}; do run "$connections"; done
