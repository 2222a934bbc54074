#!/usr/bin/env bash
# Builds the container image and exercises it the way a deployment would:
# against the local PostgreSQL (127.0.0.1:5432, trust auth), with host
# networking (this machine's docker engine has no bridge network).
#
# No image registry is reachable here, so the base images the Dockerfile
# starts from are made locally from Debian's packages (debootstrap) and this
# machine's Rust toolchain, once; docker keeps them between runs.
#
#   scripts/container-test.sh              build the base images if missing, the image, run every check
#   scripts/container-test.sh base-images  only build the local base images
#
# Needs: a running docker engine, debootstrap, python3, curl, openssl, psql.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=signhook-local/debian:bookworm-slim
RUST_VERSION=$(rustc --version | awk '{print $2}')
RUST_IMAGE=signhook-local/rust:${RUST_VERSION}-bookworm
NGINX_IMAGE=signhook-local/nginx:bookworm
IMAGE=signhook:container-test
PG=postgres://postgres@127.0.0.1:5432

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# --- local base images -------------------------------------------------------

# A debian:bookworm-slim look-alike: minbase debootstrap, documentation and
# package lists removed, dpkg told not to install documentation again.
build_base_image() {
    have_image "$BASE_IMAGE" && return
    log "building $BASE_IMAGE with debootstrap"
    local root
    root=$(mktemp -d /tmp/signhook-bookworm.XXXXXX)
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/tmp/signhook-debootstrap.log 2>&1 \
        || { tail -20 /tmp/signhook-debootstrap.log; fail "debootstrap"; }
    cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    # As the official image: no recommends, no translations, no caches kept.
    cat >"$root/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
}

# The rust:1-bookworm stand-in: the base image plus gcc (mimalloc and ring
# compile C) and this machine's toolchain. The host's CA bundle replaces the
# image's so cargo trusts the same certificate authorities as the host.
build_rust_image() {
    have_image "$RUST_IMAGE" && return
    log "building $RUST_IMAGE from the base image and $(rustc --print sysroot)"
    local sysroot container=signhook-rust-image-$$
    sysroot=$(rustc --print sysroot)
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker run --name "$container" --network host \
        -v "$sysroot":/toolchain:ro -v /etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro \
        "$BASE_IMAGE" bash -euc '
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev ca-certificates >/dev/null
            rm -rf /var/lib/apt/lists/*
            cp /host-ca.crt /etc/ssl/certs/ca-certificates.crt
            mkdir -p /usr/local/rust /usr/local/cargo
            cp -a /toolchain/bin /toolchain/lib /usr/local/rust/
            /usr/local/rust/bin/cargo --version' \
        || fail "preparing the Rust build image"
    docker commit \
        --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        "$container" "$RUST_IMAGE" >/dev/null
    docker rm "$container" >/dev/null
}

build_nginx_image() {
    have_image "$NGINX_IMAGE" && return
    log "building $NGINX_IMAGE"
    docker build -q --network host -t "$NGINX_IMAGE" --build-arg BASE="$BASE_IMAGE" - >/dev/null <<'EOF' \
        || fail "building the nginx image"
ARG BASE
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
EOF
}

build_base_image
build_rust_image
build_nginx_image
[ "${1:-}" = base-images ] && exit 0

# --- the run's resources, removed on exit ------------------------------------

RUN=ctest_$(date +%s)_$$
DB=signhook_$RUN
CONTAINER=signhook-$RUN
NGINX_CONTAINER=signhook-nginx-$RUN
COMPOSE_PROJECT=signhook$RUN
WORK=$(mktemp -d /tmp/signhook-$RUN.XXXXXX)
OUT=target/container-test
mkdir -p "$OUT"
ADMIN_TOKEN=change-me-to-a-long-token
CLIENT_ID=my-client-id

compose() {
    docker-compose -p "$COMPOSE_PROJECT" -f docker-compose.yml -f docker-compose.local-postgres.yml "$@"
}
cleanup() {
    docker rm -f "$CONTAINER" "$NGINX_CONTAINER" >/dev/null 2>&1 || true
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    for db in "$DB" "${DB}_compose"; do
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sql() { psql -qtAX "$PG/$DB" -c "$1"; }
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
    local seconds=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within ${seconds}s"
        sleep 0.2
    done
}
http_status() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
is_ready() { [ "$(http_status "http://127.0.0.1:$1/readyz")" = 200 ]; }
health_of() { docker inspect -f '{{.State.Health.Status}}' "$1"; }
is_healthy() { [ "$(health_of "$1")" = healthy ]; }
pid_of() { docker inspect -f '{{.State.Pid}}' "$1"; }
rss_kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }
mib() { echo "$(( ($1 + 1023) / 1024 )) MiB"; }

# --- the image ---------------------------------------------------------------

log "docker build ($RUST_IMAGE, $BASE_IMAGE)"
started=$(date +%s)
docker build --network host --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
    -t "$IMAGE" . >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; fail "docker build"; }
BUILD_SECS=$(($(date +%s) - started))
IMAGE_BYTES=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "built in ${BUILD_SECS}s; image $((IMAGE_BYTES / 1000000)) MB (base $(( $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE") / 1000000 )) MB)"
# The build stage, tagged: untagged it would be pruned below with the
# dependency layer under it. (A no-op build: every layer is cached.)
docker build --network host --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
    --target build -t "$IMAGE-build" . >>"$OUT/build.log" 2>&1 || fail "tagging the build stage"
# Only the last layers change from build to build: drop the ones they replaced.
docker image prune -f >/dev/null

[ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = 10001:10001 ] || fail "image USER is not 10001:10001"
docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE" | grep -q '"/usr/local/bin/signhook","healthcheck"' \
    || fail "HEALTHCHECK is not signhook healthcheck"
if docker run --rm --entrypoint /bin/sh "$IMAGE" -c 'command -v curl wget' >/dev/null; then
    fail "the runtime image has curl or wget"
fi
echo "USER 10001:10001, HEALTHCHECK signhook healthcheck, no curl/wget"

# --- the container, as a deployment runs it ----------------------------------
# Read-only root, no capabilities, no privilege escalation: what the
# Kubernetes manifest's securityContext asks for.

PORT=$(free_port)
run_signhook() {
    docker run -d --name "$CONTAINER" --network host \
        --read-only --cap-drop ALL --security-opt no-new-privileges \
        --health-interval 1s --health-start-period 60s \
        -e DATABASE_URL="$PG/$DB" -e SIGNHOOK_LISTEN="127.0.0.1:$PORT" \
        -e SIGNHOOK_ADOBE_SIGN_CLIENT_IDS="$CLIENT_ID" -e SIGNHOOK_ADMIN_TOKEN="$ADMIN_TOKEN" \
        "$IMAGE" >/dev/null
}
log "docker run on 127.0.0.1:$PORT, database $DB"
run_signhook
started=$(date +%s)
wait_for 90 "/readyz 200" is_ready "$PORT"
echo "/readyz 200 after $(($(date +%s) - started))s (database created and migrated)"

PID=$(pid_of "$CONTAINER")
uids=$(awk '$1 == "Uid:" {print $2, $3, $4, $5}' "/proc/$PID/status")
[ "$uids" = "10001 10001 10001 10001" ] || fail "signhook runs with uids $uids"
[ "$(docker exec "$CONTAINER" id -un)" = signhook ] || fail "uid 10001 is not the signhook user"
echo "process $PID runs as uid 10001 (signhook)"

wait_for 30 "HEALTHCHECK healthy" is_healthy "$CONTAINER"
echo "HEALTHCHECK: $(health_of "$CONTAINER")"
# The same check must fail when nothing answers where it looks, and find a
# wildcard listen address through loopback.
dead_port=$(free_port)
if docker exec -e SIGNHOOK_LISTEN="127.0.0.1:$dead_port" "$CONTAINER" signhook healthcheck 2>"$WORK/hc.err"; then
    fail "signhook healthcheck passed with nothing listening on $dead_port"
else
    [ $? -eq 1 ] || fail "signhook healthcheck: exit code other than 1"
fi
docker exec -e SIGNHOOK_LISTEN="0.0.0.0:$PORT" "$CONTAINER" signhook healthcheck \
    || fail "signhook healthcheck with SIGNHOOK_LISTEN=0.0.0.0:$PORT"
echo "signhook healthcheck: 1 with nothing on its port ($(head -c 120 "$WORK/hc.err")), 0 for 0.0.0.0:$PORT"
RSS_IDLE=$(rss_kib "$PID" VmRSS)
echo "idle RSS $(mib "$RSS_IDLE")"

# --- the README's walk-through -----------------------------------------------

log "README walk-through with curl"
awk '/^### Walk-through with curl/ {found = 1} found && /^```sh/ {inside = 1; next} inside && /^```/ {exit} inside' \
    README.md >"$WORK/walk-through.sh"
grep -q 'http://127.0.0.1:8080' "$WORK/walk-through.sh" || fail "no walk-through found in README.md"
sed -i "s#http://127.0.0.1:8080#http://127.0.0.1:$PORT#g" "$WORK/walk-through.sh"
# The commands as written; a .curlrc only ends each answer with a newline and
# drops the progress meter.
printf 'silent\nshow-error\nwrite-out = "\\n"\n' >"$WORK/.curlrc"
CURL_HOME=$WORK bash -euo pipefail "$WORK/walk-through.sh" | tr -d '\r' >"$WORK/walk-through.out" \
    || fail "walk-through commands"
[ "$(grep -c '^HTTP/1.1 200 OK' "$WORK/walk-through.out")" = 2 ] || { cat "$WORK/walk-through.out"; fail "walk-through: two 200s expected"; }
grep -qi "^x-adobesign-clientid: $CLIENT_ID\$" "$WORK/walk-through.out" || fail "walk-through: no verification echo header"
[ "$(grep -c "{\"xAdobeSignClientId\":\"$CLIENT_ID\"}" "$WORK/walk-through.out")" = 2 ] || fail "walk-through: echo bodies"
agreement_ok() {
    python3 -c '
import json, sys
a = json.loads(sys.stdin.read().strip().splitlines()[-1])
ok = (a["status"] == "completed" and a["provider_status"] == "SIGNED" and a["name"] == "Mutual NDA"
      and [h["event_id"] for h in a["history"]] == ["9c7b4f7e-1"])
sys.exit(0 if ok else 1)' 2>/dev/null
}
agreement_url="http://127.0.0.1:$PORT/api/agreements/adobe-sign/CBJCHBCAABAAexample"
if agreement_ok <"$WORK/walk-through.out"; then
    echo "verification echo, notification 200, agreement read back completed (as the README shows)"
else
    # The worker applies after the 200; the read-back can come first.
    read_back_ok() { curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$agreement_url" | agreement_ok; }
    wait_for 10 "agreement read back completed" read_back_ok
    echo "verification echo, notification 200; agreement completed on a second read (the first came before the worker applied it)"
fi

# --- the TLS front (deploy/nginx/signhook.conf) ------------------------------

log "nginx TLS front"
TLS_PORT=$(free_port)
mkdir -p "$WORK/tls" "$WORK/nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hooks.example.com \
    -addext subjectAltName=DNS:hooks.example.com \
    -keyout "$WORK/tls/hooks.example.com.key" -out "$WORK/tls/hooks.example.com.crt" 2>/dev/null
chmod 644 "$WORK/tls/"*
# The example as shipped, but on this run's ports (each substitution must hit).
conf="$WORK/nginx/signhook.conf"
cp deploy/nginx/signhook.conf "$conf"
substitute() {
    grep -qF "$1" "$conf" || fail "deploy/nginx/signhook.conf no longer has '$1'"
    sed -i "s#$1#$2#" "$conf"
}
substitute 'listen 443 ssl;' "listen 127.0.0.1:$TLS_PORT ssl;"
substitute 'listen [::]:443 ssl;' "listen [::1]:$TLS_PORT ssl;"
substitute 'server 127.0.0.1:8080;' "server 127.0.0.1:$PORT;"
# nginx_run DOCKER-RUN-OPTIONS... -- COMMAND...
nginx_run() {
    local options=()
    while [ "$1" != -- ]; do options+=("$1"); shift; done
    shift
    docker run "${options[@]}" --network host -v "$conf:/etc/nginx/conf.d/signhook.conf:ro" \
        -v "$WORK/tls:/etc/nginx/tls:ro" "$NGINX_IMAGE" "$@"
}
nginx_run --rm -- nginx -t 2>&1 | tee "$WORK/nginx-t.out" | grep -q 'test is successful' \
    || { cat "$WORK/nginx-t.out"; fail "nginx -t"; }
echo "nginx -t: $(grep -c 'successful\|syntax is ok' "$WORK/nginx-t.out") ok lines"
nginx_run -d --name "$NGINX_CONTAINER" -- nginx -g 'daemon off;' >/dev/null
front="https://hooks.example.com:$TLS_PORT"
tls=(--cacert "$WORK/tls/hooks.example.com.crt" --resolve "hooks.example.com:$TLS_PORT:127.0.0.1")
front_up() { [ "$(http_status "${tls[@]}" "$front/")" = 404 ]; }
wait_for 20 "nginx answering" front_up
for version in 1.2 1.3; do
    protocol=$(openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername hooks.example.com \
        "-tls${version/./_}" </dev/null 2>/dev/null | awk -F', ' '/^New, / {print $2; exit}')
    [ "$protocol" = "TLSv$version" ] || fail "TLS $version handshake (got '$protocol')"
    [ "$(http_status "${tls[@]}" "--tlsv$version" --tls-max "$version" -H "X-AdobeSign-ClientId: $CLIENT_ID" \
        "$front/webhooks/adobe-sign")" = 200 ] || fail "verification echo over TLS $version"
done
curl -s "${tls[@]}" -D "$WORK/front.headers" -o /dev/null -H "X-AdobeSign-ClientId: $CLIENT_ID" "$front/webhooks/adobe-sign"
grep -qi "^x-adobesign-clientid: $CLIENT_ID" "$WORK/front.headers" || fail "verification echo header through nginx"
notification='{"webhookNotificationId":"front-1","event":"AGREEMENT_CREATED","eventDate":"2026-11-20T09:00:00Z","eventResourceType":"agreement","agreement":{"id":"front-agreement","name":"Through the front","status":"OUT_FOR_SIGNATURE"}}'
[ "$(http_status "${tls[@]}" -X POST -H "X-AdobeSign-ClientId: $CLIENT_ID" -H 'Content-Type: application/json' \
    -d "$notification" "$front/webhooks/adobe-sign")" = 200 ] || fail "notification through nginx"
[ "$(sql "SELECT count(*) FROM events WHERE event_id = 'front-1'")" = 1 ] || fail "notification through nginx not stored"
for path in /metrics /api/stats /api/openapi.json /healthz /readyz /webhooks/../metrics /webhooks/%2e%2e/api/stats; do
    status=$(http_status "${tls[@]}" --path-as-is -H "Authorization: Bearer $ADMIN_TOKEN" "$front$path")
    [ "$status" = 404 ] || fail "$path through nginx answered $status"
done
[ "$(http_status -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$PORT/api/stats")" = 200 ] \
    || fail "/api/stats on the private address"
echo "TLS 1.2 and 1.3 offered; verification echo and a notification through it; /metrics, /api, health endpoints 404 (also via ../ and %2e%2e)"
docker rm -f "$NGINX_CONTAINER" >/dev/null

# --- memory under a short burst ----------------------------------------------

log "signhook simulate load: 32 connections for 5 s, then --verify"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_before=$(cpu_ticks "$PID")
docker run --rm --network host -e SIGNHOOK_ADOBE_SIGN_CLIENT_IDS="$CLIENT_ID" -e SIGNHOOK_ADMIN_TOKEN="$ADMIN_TOKEN" \
    "$IMAGE" simulate load --url "http://127.0.0.1:$PORT" --connections 32 --duration 5s --verify --json \
    >"$WORK/load.json" || { cat "$WORK/load.json"; fail "simulate load"; }
LOAD=$(python3 - "$WORK/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['new_acknowledged']} events acknowledged at {r['acks_per_sec']:.0f}/s, "
      f"p99 {r['latency_ms']['p99']} ms, all processed")
PY
)
RSS_PEAK=$(rss_kib "$PID" VmHWM)
RSS_AFTER=$(rss_kib "$PID" VmRSS)
CPU_SECS=$(( ($(cpu_ticks "$PID") - ticks_before) / $(getconf CLK_TCK) ))
echo "$LOAD; RSS peak $(mib "$RSS_PEAK"), after $(mib "$RSS_AFTER"); signhook used ${CPU_SECS} CPU seconds"

# --- docker stop during a burst: nothing acknowledged is lost -----------------

log "docker stop (SIGTERM) during a burst"
# Eight keep-alive connections post unique notifications until the server goes
# away (at most 60 s); each id answered 200 is written down.
cat >"$WORK/burst.py" <<'PY'
import http.client, json, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
acked, lock, deadline = [], threading.Lock(), time.monotonic() + 60
def sender(n):
    conn, i = None, 0
    while time.monotonic() < deadline:
        event = f"stop-{n}-{i}"
        body = json.dumps({"webhookNotificationId": event, "event": "AGREEMENT_ACTION_COMPLETED",
                           "eventDate": "2026-11-20T10:00:00Z", "eventResourceType": "agreement",
                           "agreement": {"id": f"stop-agreement-{i % 50}", "name": "Burst", "status": "OUT_FOR_SIGNATURE"}})
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/webhooks/adobe-sign", body,
                         {"X-AdobeSign-ClientId": "my-client-id", "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    acked.append(event)
            i += 1
        except OSError:
            return  # the server is gone: stop sending
threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
open(out, "w").write("".join(a + "\n" for a in acked))
PY
python3 "$WORK/burst.py" "$PORT" "$WORK/acked.txt" &
burst=$!
stored_some() { [ "$(sql "SELECT count(*) FROM events WHERE event_id LIKE 'stop-%'")" -ge 500 ]; }
wait_for 60 "burst stored 500 events" stored_some
started=$(date +%s.%N)
docker stop -t 30 "$CONTAINER" >/dev/null
STOP_SECS=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
wait "$burst"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
[ "$exit_code" = 0 ] || fail "signhook exited $exit_code after SIGTERM"
python3 -c "import sys; sys.exit(0 if $STOP_SECS < 25 else 1)" \
    || fail "docker stop took ${STOP_SECS}s, past SIGNHOOK_SHUTDOWN_GRACE_SECS (25 s)"
ACKED=$(wc -l <"$WORK/acked.txt")
[ "$ACKED" -ge 500 ] || fail "only $ACKED notifications acknowledged"
missing_sql="SELECT count(*) FROM acked a LEFT JOIN events e ON e.provider = 'adobe-sign' AND e.event_id = a.id"
count_missing() {
    psql -qtAX "$PG/$DB" -c 'CREATE TEMP TABLE acked (id text)' -c "\\copy acked FROM '$WORK/acked.txt'" \
        -c "$missing_sql WHERE $1"
}
lost=$(count_missing 'e.id IS NULL')
[ "$lost" = 0 ] || fail "$lost acknowledged notifications are not stored"
queued=$(sql "SELECT count(*) FROM events WHERE state <> 'processed'")
echo "exit code 0 after ${STOP_SECS}s; all $ACKED acknowledged notifications stored ($queued not yet applied)"

# The same container again: what was queued at the stop is applied.
docker start "$CONTAINER" >/dev/null
wait_for 90 "/readyz 200 after restart" is_ready "$PORT"
all_applied() { [ "$(sql "SELECT count(*) FROM events WHERE state <> 'processed'")" = 0 ]; }
wait_for 60 "every stored event applied after restart" all_applied
unapplied=$(count_missing "e.state <> 'processed'")
[ "$unapplied" = 0 ] || fail "$unapplied acknowledged notifications not applied"
agreements=$(sql "SELECT count(*) FROM agreements WHERE agreement_id LIKE 'stop-agreement-%' AND status = 'in_progress'")
expected=$(awk -F- '{seen[$3 % 50]} END {print length(seen)}' "$WORK/acked.txt")
[ "$agreements" = "$expected" ] || fail "$agreements burst agreements in_progress, $expected expected"
echo "after restart: every acknowledged notification applied ($agreements agreements)"
docker stop -t 30 "$CONTAINER" >/dev/null
[ "$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")" = 0 ] || fail "second stop: exit code"

# --- logs ---------------------------------------------------------------------

log "JSON logs on stdout"
docker logs "$CONTAINER" 2>/dev/null >"$WORK/stdout.log"
docker logs "$CONTAINER" 2>"$WORK/stderr.log" >/dev/null
python3 - "$WORK/stdout.log" <<'PY' || fail "stdout is not JSON log lines"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
records = [json.loads(l) for l in lines]
assert all({"timestamp", "level", "message"} <= r.keys() for r in records), "a line without timestamp/level/message"
messages = [r["message"] for r in records]
assert messages.count("SIGTERM received") == 2 and messages.count("stopped") == 2, messages[-5:]
print(f"{len(records)} lines, every one a JSON object with timestamp, level and message; "
      f"'SIGTERM received' and 'stopped' at each stop")
PY
[ ! -s "$WORK/stderr.log" ] || { cat "$WORK/stderr.log"; fail "signhook wrote to stderr"; }
docker rm "$CONTAINER" >/dev/null

# --- docker compose -------------------------------------------------------------

log "docker compose"
# The whole file as a user gets it (its PostgreSQL image cannot be pulled here).
docker-compose -p "$COMPOSE_PROJECT" -f docker-compose.yml config -q || fail "docker-compose.yml does not validate"
# Its signhook service, built by compose, against the local PostgreSQL.
COMPOSE_PORT=$(free_port)
export SIGNHOOK_IMAGE=$IMAGE-compose RUST_IMAGE RUNTIME_IMAGE=$BASE_IMAGE DATABASE_URL="$PG/${DB}_compose" \
    SIGNHOOK_LISTEN="127.0.0.1:$COMPOSE_PORT" SIGNHOOK_ADOBE_SIGN_CLIENT_IDS="$CLIENT_ID" SIGNHOOK_ADMIN_TOKEN="$ADMIN_TOKEN"
compose config >"$WORK/compose.yml" || fail "docker-compose.yml + docker-compose.local-postgres.yml do not validate"
# Compose v1 (Debian's) refuses published ports with host networking, and an
# override cannot remove them (v2's !reset can): the merged file, less the
# signhook service's `ports`, which host networking has no use for anyway.
/usr/bin/python3 - "$WORK/compose.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
merged = yaml.safe_load(open(path))
del merged["services"]["signhook"]["ports"]
yaml.safe_dump(merged, open(path, "w"))
PY
compose() { docker-compose -p "$COMPOSE_PROJECT" -f "$WORK/compose.yml" "$@"; }
compose up -d --build --no-deps signhook >"$OUT/compose-up.log" 2>&1 || { tail -30 "$OUT/compose-up.log"; fail "compose up"; }
service=$(compose ps -q signhook)
wait_for 90 "compose service /readyz 200" is_ready "$COMPOSE_PORT"
wait_for 60 "compose service healthy" is_healthy "$service"
curl -s -i -H "X-AdobeSign-ClientId: $CLIENT_ID" "http://127.0.0.1:$COMPOSE_PORT/webhooks/adobe-sign" | tr -d '\r' \
    | grep -qi "^x-adobesign-clientid: $CLIENT_ID\$" || fail "compose service: verification echo"
compose stop signhook >/dev/null 2>&1
[ "$(docker inspect -f '{{.State.ExitCode}}' "$service")" = 0 ] || fail "compose stop: exit code"
echo "config valid; signhook service built and started by compose: ready, healthy, verification echo, stopped with exit 0"
compose down -v --remove-orphans >/dev/null 2>&1
docker rmi "$SIGNHOOK_IMAGE" >/dev/null

log "container test passed"
cat <<SUMMARY
image $IMAGE: $((IMAGE_BYTES / 1000000)) MB (built in ${BUILD_SECS}s)
RSS: idle $(mib "$RSS_IDLE"), peak $(mib "$RSS_PEAK") under 32 connections for 5 s ($LOAD; ${CPU_SECS} CPU seconds)
docker stop during a burst: exit 0 in ${STOP_SECS}s, $ACKED acknowledged notifications all stored and applied
SUMMARY
