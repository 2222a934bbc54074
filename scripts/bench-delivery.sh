#!/usr/bin/env bash
# Delivery benchmark: `signhook serve` with one destination, a local sink that
# answers 2xx (`signhook listen`, which verifies every signature; its output
# goes to /dev/null), and `signhook simulate load` against the server. Then:
# how many status changes were recorded and delivered, the delivery backlog
# sampled every second while the load ran, and the time from a webhook's
# receipt (its row's received_at, just before its acknowledgement) to the
# application's 2xx (the delivery's delivered_at), from the database.
# Usage: scripts/bench-delivery.sh [duration, default 30s]; BENCH_CONNECTIONS
# (default 32) sets the load's connections, BENCH_RATE (events/s) paces the
# load instead of sending as fast as the server answers. BENCH_DRAIN=1
# measures delivery alone: the destination is disabled while the load runs
# (changes queue up), then enabled, and the backlog's drain is timed.
# BENCH_DESTINATION=0 runs the same without a destination, for a baseline.
# Results: stdout, target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-30s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
RATE=${BENCH_RATE:+--rate $BENCH_RATE}
DRAIN=${BENCH_DRAIN:-0}
PORT=${BENCH_PORT:-18080}
SINK_PORT=${BENCH_SINK_PORT:-18090}
DB=${BENCH_DB:-signhook_bench_delivery}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
OUT=target/bench
mkdir -p "$OUT"

cargo build --release --quiet
BIN=target/release/signhook
SECRET="whsec_$(head -c 32 /dev/urandom | base64)"

export SIGNHOOK_ADOBE_SIGN_CLIENT_IDS=bench-client
export SIGNHOOK_ADMIN_TOKEN=bench-admin-token-0123456789
export SIGNHOOK_LOG_FORMAT=json
export RUST_LOG=${RUST_LOG:-info,sqlx=warn}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# PostgreSQL work: the benchmark database's backends (the server's pool and
# LISTEN connection) plus the shared WAL writer, checkpointer and writer.
pg_ticks() {
    local pids
    pids=$(psql "$PG/postgres" -Atc "SELECT pid FROM pg_stat_activity
                                      WHERE (datname = '$DB' AND application_name <> 'psql')
                                         OR backend_type IN ('walwriter', 'checkpointer', 'background writer')")
    for pid in $pids; do ticks "$pid" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
"$BIN" listen --listen "127.0.0.1:$SINK_PORT" --secret "$SECRET" >/dev/null 2>"$OUT/delivery.sink.log" &
sink=$!
destination=(SIGNHOOK_DELIVERY_URL="http://127.0.0.1:$SINK_PORT/" SIGNHOOK_DELIVERY_SECRET="$SECRET")
# BENCH_DESTINATION=0: the same run with no destination (the baseline).
if [ "${BENCH_DESTINATION:-1}" = 0 ]; then destination=(); fi
env DATABASE_URL="$PG/$DB" SIGNHOOK_LISTEN="127.0.0.1:$PORT" "${destination[@]}" \
    "$BIN" serve >"$OUT/delivery.server.log" 2>&1 &
server=$!
trap 'kill $server $sink 2>/dev/null; kill $sampler 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
sleep 1
if [ "$DRAIN" = 1 ]; then
    psql "$PG/$DB" -qc "UPDATE delivery_destinations SET disabled_at = now()"
fi

server0=$(ticks $server); sink0=$(ticks $sink); pg0=$(pg_ticks)

: >"$OUT/delivery.backlog.tsv"
( while true; do
    psql "$PG/$DB" -Atc "SELECT round(extract(epoch FROM clock_timestamp())::numeric, 1),
                                count(*) FILTER (WHERE state = 'pending')
                           FROM deliveries" >>"$OUT/delivery.backlog.tsv" 2>/dev/null || true
    sleep 1
  done ) &
sampler=$!

"$BIN" simulate load --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --duration "$DURATION" $RATE \
    --verify --timeout 120s --json >"$OUT/delivery.load.json" || true
sent_done=$(date +%s.%N)
if [ "$DRAIN" = 1 ]; then
    backlog=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM deliveries WHERE state = 'pending'")
    enabled=$(psql "$PG/$DB" -Atc "SELECT extract(epoch FROM clock_timestamp())")
    curl -sf -X POST -H "Authorization: Bearer $SIGNHOOK_ADMIN_TOKEN" \
        "http://127.0.0.1:$PORT/api/destinations/default/enable" >/dev/null
fi
for _ in $(seq 1 1200); do
    pending=$(psql "$PG/$DB" -Atc "SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
    [ "$pending" = 0 ] && break
    sleep 0.1
done
drained=$(date +%s.%N)
kill $sampler 2>/dev/null || true
cpu="$(( $(ticks $server) - server0 )) $(( $(ticks $sink) - sink0 )) $(( $(pg_ticks) - pg0 ))"
curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/delivery.metrics.txt" || true
if [ "$DRAIN" = 1 ]; then
    psql "$PG/$DB" -At -F ' ' -c "SELECT count(*), extract(epoch FROM max(delivered_at)) - $enabled
                                    FROM deliveries WHERE state = 'delivered'" | {
        read -r count secs
        python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[2]); b = int(sys.argv[3]);
print(f'drain: {b:,} queued while disabled; {n:,} delivered {s:.2f} s after enabling: {n / s:,.0f} deliveries/s')" \
            "$count" "$secs" "$backlog"
    }
    exit 0
fi

psql "$PG/$DB" -At -F '|' -c "
    SELECT (SELECT count(*) FROM changes),
           (SELECT count(*) FROM deliveries WHERE state = 'delivered'),
           (SELECT count(*) FROM deliveries WHERE state <> 'delivered'),
           extract(epoch FROM max(d.delivered_at) - min(c.created_at)),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.received_at)),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.received_at)),
           extract(epoch FROM max(d.delivered_at - e.received_at)),
           (SELECT count(*) FROM deliveries WHERE attempts > 1)
      FROM deliveries d JOIN changes c ON c.id = d.change_id
      JOIN events e ON e.provider = c.provider AND e.event_id = c.event_id" >"$OUT/delivery.db.txt"

python3 - "$OUT/delivery.load.json" "$OUT/delivery.db.txt" "$OUT/delivery.backlog.tsv" "$sent_done" "$drained" "$CONNECTIONS" "$cpu" <<'PY'
import json, sys
load, db, backlog, sent_done, drained, connections, cpu = sys.argv[1:]
server_ticks, sink_ticks, pg_ticks = (int(t) for t in cpu.split())
r = json.load(open(load))
changes, delivered, undelivered, span, p50, p99, worst, retried = open(db).read().strip().split("|")
samples = [int(line.split("|")[1]) for line in open(backlog) if "|" in line]
secs = r["elapsed_secs"]
print(f"{connections} connections, {secs:.1f} s: {r['acks_per_sec']:,.0f} acks/s (p50 {r['latency_ms']['p50']} ms, "
      f"p99 {r['latency_ms']['p99']} ms), {r['rejected']} rejected, {r['unavailable']} unavailable")
if int(delivered) > 0:
    print(f"  {int(changes):,} changes recorded ({int(changes) / secs:,.0f}/s while sending), {int(delivered):,} delivered, "
          f"{int(undelivered)} not delivered, {int(retried)} needed a retry")
    print(f"  first change to last 2xx: {float(span):.2f} s ({int(delivered) / float(span):,.0f} deliveries/s); "
          f"backlog drained {float(drained) - float(sent_done):.2f} s after the load ended")
    print(f"  backlog sampled each second while sending: max {max(samples or [0]):,}, "
          f"samples {samples[:40]}")
    print(f"  receipt -> application 2xx: p50 {float(p50) * 1000:.1f} ms, p99 {float(p99) * 1000:.1f} ms, "
          f"max {float(worst) * 1000:.1f} ms")
else:
    print(f"  {int(changes):,} changes recorded, no deliveries (no destination)")
events = max(r["new_acknowledged"], 1)
print(f"  CPU per event (load and drain): server {server_ticks * 10_000 / events:.0f} µs, "
      f"PostgreSQL {pg_ticks * 10_000 / events:.0f} µs, sink {sink_ticks * 10_000 / events:.0f} µs")
PY
