#!/usr/bin/env python3
"""Peak resident memory of signhook with big bodies (README: "What a body
costs"). Starts the binary on loopback with a database of its own (dropped
afterwards), the worker off, then sends 3 rounds of N concurrent 15 MB
bodies to /webhooks/adobe-sign and prints idle, peak (VmHWM) and final RSS
and the answers. KIND: `valid` (a notification with a 15 MB signed-document
field), `array` (a 15 MB JSON array: valid JSON, not a notification) or
`junk` (15 MB that is not JSON). Bounded: 3 x N requests, loopback only.

Usage: scripts/body-rss.py target/release/signhook valid 8
       (PG_URL defaults to postgres://postgres@127.0.0.1:5432)"""
import http.client, json, os, subprocess, sys, threading, uuid

BIN, KIND, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
PG = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432")
SIZE = 15 * 1000 * 1000
db = "body_rss_" + uuid.uuid4().hex[:8]
env = dict(os.environ, DATABASE_URL=f"{PG}/{db}", SIGNHOOK_LISTEN="127.0.0.1:0",
           SIGNHOOK_ADOBE_SIGN_CLIENT_IDS="cid", SIGNHOOK_LOG_FORMAT="json", SIGNHOOK_WORKER_CONCURRENCY="0",
           SIGNHOOK_REQUEST_TIMEOUT_MS="4900", RUST_LOG="info,sqlx=warn")
server = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
addr = next((json.loads(line)["addr"] for line in server.stdout if '"listening"' in line), None)
if addr is None:
    sys.exit("signhook did not start")
threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
host, port = addr.rsplit(":", 1)


def mib(field):
    with open(f"/proc/{server.pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith(field))


def body(i):
    if KIND == "valid":
        return json.dumps({"webhookNotificationId": f"n-{uuid.uuid4()}", "event": "AGREEMENT_CREATED",
                           "eventDate": "2026-11-20T09:00:00Z", "eventResourceType": "agreement",
                           "agreement": {"id": f"a-{i}", "name": "x", "status": "OUT_FOR_SIGNATURE",
                                         "signedDocumentInfo": {"document": "A" * (SIZE - 600)}}}).encode()
    if KIND == "array":
        return ("[" + ",".join(["1"] * (SIZE // 2)) + f",{uuid.uuid4().int}]").encode()
    return b"x" * (SIZE - 40) + uuid.uuid4().hex.encode()


answers = []


def send(payload):
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", "/webhooks/adobe-sign", body=payload,
                           headers={"X-AdobeSign-ClientId": "cid", "Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        code = "ok" if response.status == 200 else json.loads(data)["error"]["code"]
        answers.append(f"{response.status} {code}")
    except OSError as error:
        answers.append(type(error).__name__)


idle = mib("VmRSS")
for _ in range(3):
    threads = [threading.Thread(target=send, args=(body(i),)) for i in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print(json.dumps({"kind": KIND, "concurrent": N, "idle_rss_mib": idle, "peak_rss_mib": mib("VmHWM"),
                  "final_rss_mib": mib("VmRSS"), "answers": {a: answers.count(a) for a in sorted(set(answers))}}))
server.terminate()
server.wait()
subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {db}"], check=False)
