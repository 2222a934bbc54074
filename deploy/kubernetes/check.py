"""Checks what the schema cannot about deploy/kubernetes: that the pieces fit
each other, the image and signhook's configuration. Run by .ci/run after the
schema validation (kubernetes-validate):

    python3 deploy/kubernetes/check.py

Needs PyYAML. Exits 1 listing every problem found.
"""

import pathlib
import re
import sys
import tomllib

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def load_resources():
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    objects = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((HERE / name).read_text()):
            objects[doc["kind"]] = doc
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in HERE.glob("*.yaml")} - {"kustomization.yaml"}
    check(listed == on_disk, f"kustomization.yaml lists {sorted(listed)}, the folder has {sorted(on_disk)}")
    return objects


def dockerfile_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def duration_secs(container, setting, default):
    """A setting's value from the container's env, else config/default.toml, else `default`."""
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    name = f"SIGNHOOK_{setting.upper()}"
    if env.get(name) is not None:
        return int(env[name])
    toml = tomllib.loads((ROOT / "config" / "default.toml").read_text())
    return int(toml.get(setting, default))


def quantity_bytes(quantity):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+)([KMG]i?)?", str(quantity))
    check(match is not None, f"memory quantity {quantity!r} not understood")
    return int(match[1]) * units.get(match[2], 1) if match else 0


def main():
    objects = load_resources()
    deployment, service = objects["Deployment"], objects["Service"]
    pdb, ingress, secret = objects["PodDisruptionBudget"], objects["Ingress"], objects["Secret"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    (container,) = spec["containers"]

    def matches(selector):
        return all(labels.get(k) == v for k, v in selector.items())

    check(matches(deployment["spec"]["selector"]["matchLabels"]), "Deployment selector does not match its pods")
    check(matches(service["spec"]["selector"]), "Service selector does not match the pods")
    check(matches(pdb["spec"]["selector"]["matchLabels"]), "PodDisruptionBudget selector does not match the pods")
    check(pdb["spec"].get("minAvailable", 0) < deployment["spec"]["replicas"],
          "PodDisruptionBudget minAvailable must be below replicas, or no node can ever be drained")

    # The listener, its port name and the probes.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    listen = env.get("SIGNHOOK_LISTEN", "0.0.0.0:8080")  # the image's default
    check(listen.rsplit(":", 1)[1] == str(ports.get("http")),
          f"SIGNHOOK_LISTEN {listen} is not the container port named http ({ports.get('http')})")
    check(not listen.startswith("127."), "SIGNHOOK_LISTEN on loopback cannot be probed or routed to")
    probes = {kind: container.get(kind, {}).get("httpGet", {}) for kind in
              ("readinessProbe", "livenessProbe", "startupProbe")}
    check(probes["readinessProbe"].get("path") == "/readyz", "readiness must be /readyz")
    check(probes["livenessProbe"].get("path") == "/healthz",
          "liveness must be /healthz (it stays 200 during a database outage)")
    check(probes["startupProbe"].get("path") == "/healthz", "startupProbe must be /healthz")
    for kind, probe in probes.items():
        check(probe.get("port") in ports, f"{kind} port {probe.get('port')!r} is not a container port")
    check(pod["metadata"].get("annotations", {}).get("prometheus.io/port") == str(ports.get("http")),
          "prometheus.io/port is not the http port")

    # Shutdown: SIGTERM comes after preStop; signhook needs its grace period after it.
    grace = duration_secs(container, "shutdown_grace_secs", 25)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    termination = spec.get("terminationGracePeriodSeconds", 30)
    check(termination > pause + grace,
          f"terminationGracePeriodSeconds {termination} is not above preStop {pause}s + shutdown grace {grace}s")

    # Credentials come from the Secret, nothing secret inline.
    refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    check(refs == [secret["metadata"]["name"]], f"envFrom secretRef {refs} is not the Secret")
    for key in secret.get("stringData", {}) | secret.get("data", {}):
        check(re.fullmatch(r"DATABASE_URL|SIGNHOOK_[A-Z0-9_]+", key), f"Secret key {key} is no signhook variable")
    for name in env:
        check(not re.search(r"TOKEN|SECRET|PASSWORD|CLIENT_IDS|SIGNATURES|DATABASE_URL", name),
              f"{name} is set inline; it belongs in the Secret")

    # Security context: the image's user, non-root, read-only root (the
    # container test runs the image --read-only --cap-drop ALL).
    uid, gid = dockerfile_user()
    pod_security, security = spec.get("securityContext", {}), container.get("securityContext", {})
    check(pod_security.get("runAsNonRoot") is True, "runAsNonRoot must be true")
    check(pod_security.get("runAsUser") == uid and pod_security.get("runAsGroup") == gid,
          f"runAsUser/runAsGroup must be the Dockerfile's USER {uid}:{gid}")
    check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")

    # Resources: set, and the limit leaves room above the request.
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        check("memory" in resources.get(part, {}), f"resources.{part}.memory missing")
    check("cpu" in resources.get("requests", {}), "resources.requests.cpu missing")
    if "memory" in resources.get("requests", {}) and "memory" in resources.get("limits", {}):
        check(quantity_bytes(resources["limits"]["memory"]) >= quantity_bytes(resources["requests"]["memory"]),
              "memory limit below the request")

    # The Ingress routes /webhooks/ and nothing else to the Service.
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    check({p["targetPort"] for p in service["spec"]["ports"]} <= set(ports), "Service targetPort is not a container port")
    check(ingress["spec"].get("defaultBackend") is None, "the Ingress must have no defaultBackend")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    check(paths, "the Ingress routes nothing")
    for path in paths:
        check(path["path"] == "/webhooks/" and path["pathType"] == "Prefix",
              f"the Ingress routes {path['path']} ({path['pathType']}): only Prefix /webhooks/ may be public")
        backend = path["backend"]["service"]
        check(backend["name"] == service["metadata"]["name"] and backend["port"].get("name") in service_ports,
              f"Ingress backend {backend} is not the Service's port")
    check(ingress["spec"].get("tls"), "the Ingress has no TLS (providers require HTTPS)")

    if problems:
        print("deploy/kubernetes:", *problems, sep="\n  ")
        sys.exit(1)
    print(f"deploy/kubernetes: {len(objects)} objects fit together "
          f"(probes, ports, selectors, grace {termination}s > {pause}s + {grace}s, Secret, Ingress only /webhooks/)")


main()
