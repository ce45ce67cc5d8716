#!/usr/bin/env python3
"""Cross-checks of rendered fnhost kustomizations that schema validation and
checkov do not do. Run by `cargo xtask k8s` (xtask/src/k8s.rs) as

    python3 k8s/checks.py --schema tests/spec/spin-manifest-v2.schema.json \
        --base base.yaml NAME=RENDERED.yaml ...

where every RENDERED.yaml is the output of `kubectl kustomize` for one
kustomization (NAME is its directory, for messages) and --base names the
rendering of k8s/base. Exit status 0 when every check passes, 1 otherwise,
with one line per problem.

Checks, per rendering:
  * Service selectors match the pod template labels of a Deployment, and every
    Service targetPort resolves to the container port fnhost's public listener
    (`--listen`) uses; the admin listener (`--admin-listen`) is neither a
    Service target nor a declared container port.
  * Probes: readiness is GET /readyz on the public listener port; liveness is
    GET /healthz on the metrics listener port, which the public listener's
    connection cap cannot starve (fnhost serves /healthz on both).
  * Shutdown: terminationGracePeriodSeconds covers the preStop sleep plus
    fnhost's drain (the manifest's request_timeout + 5 s), so requests in
    flight finish before SIGKILL.
  * Memory: spin.toml sets max_concurrent_requests explicitly (its default
    follows the CPU count) and max_concurrent_requests x memory_limit plus
    HOST_MEMORY for the host itself fits the container's memory limit.
  * Secrets: the admin token comes from a Secret through the environment
    (FNHOST_ADMIN_TOKEN), never a Secret volume (group-readable under fsGroup,
    which fnhost refuses for token files); --state-dir is a writable emptyDir.
  * Container args: `--manifest` names the `spin.toml` key of a mounted
    ConfigMap volume (directory mount, no subPath, so updates reach the pod);
    `--cache-dir` and `--state-dir` are mounted volumes (the root filesystem is
    read-only).
  * The ConfigMap: every projected key exists, every key is projected (else
    fnhost could not read it), total size below the 1 MiB ConfigMap limit.
  * spin.toml (from the ConfigMap) parses as TOML and validates against Spin's
    manifest JSON schema; every component and candidate source is
    `{ url = "oci://HOST[:PORT]/REPOSITORY:TAG", digest = "sha256:<64 hex>" }`
    (modules never ride in ConfigMaps), and the registry's port (443, 80 for
    a registry in insecure_registries, or the one given) is open for egress;
    every `files` source directory is provided by the ConfigMap projection;
    every HTTP trigger names a defined component.
  * HPA, PDB and NetworkPolicy target the Deployment's pods; named ports in
    the NetworkPolicy exist on the container; every egress rule beyond DNS
    excludes the link-local range (cloud metadata services).
Across renderings:
  * every overlay renders exactly the base's objects, except the spin.toml key
    of the ConfigMap (overlays change the configuration, never the image);
  * every model file the ConfigMap carries is read by at least one rendering's
    spin.toml.
"""

import argparse
import copy
import json
import posixpath
import re
import sys
import tomllib

import jsonschema
import yaml

# probe -> (path, the listener flag whose port it must use)
PROBES = {"readinessProbe": ("/readyz", "--listen"), "livenessProbe": ("/healthz", "--metrics-listen")}
# Memory the host needs beside its guests: compiled code, buffers, queues.
HOST_MEMORY = 256 << 20
# fnhost's defaults (host/src/spec.rs AppLimits) and its drain beyond request_timeout.
DEFAULT_REQUEST_TIMEOUT_S = 30
DEFAULT_MEMORY_LIMIT = 128 << 20
DRAIN_BEYOND_TIMEOUT_S = 5
METADATA_CIDR = "169.254.0.0/16"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# A registry source: oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:<64 hex>] (host/src/spec.rs).
OCI_RE = re.compile(r"^oci://(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>[0-9]+))?"
                    r"/[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?"
                    r"(?:@sha256:[0-9a-f]{64})?$")
CONFIGMAP_LIMIT = 1024 * 1024


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, msg):
        self.items.append(f"{where}: {msg}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def key(obj):
    md = obj.get("metadata", {})
    return (obj.get("kind"), md.get("namespace", ""), md.get("name"))


def arg_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def port_of(addr):
    try:
        return int(addr.rsplit(":", 1)[1])
    except (AttributeError, IndexError, ValueError):
        return None


def resolve_port(container, port):
    """A port reference (name or number) -> container port number, or None."""
    for p in container.get("ports", []):
        if port == p.get("name") or port == p.get("containerPort"):
            return p.get("containerPort")
    return None


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def sources_of(component):
    """(what, source, files) for the component and its fnhost candidate."""
    out = [("source", component.get("source"), component.get("files", []))]
    cand = component.get("tool", {}).get("fnhost", {}).get("candidate")
    if cand is not None:
        out.append(("tool.fnhost.candidate.source", cand.get("source"),
                    cand.get("files", component.get("files", []))))
    return out


def duration_s(text):
    """Seconds of a humantime duration such as "30s", "2m" or "1500ms"."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)\s*(ms|s|m|h)", str(text).strip())
    if not m:
        raise ValueError(f"unreadable duration {text!r}")
    return int(m.group(1)) * units[m.group(2)]


def size_bytes(text):
    """Bytes of a size such as "128MiB", "1Gi" (Kubernetes) or "64MB"."""
    units = {"": 1, "k": 1000, "kb": 1000, "ki": 1 << 10, "kib": 1 << 10, "m": 1000**2,
             "mb": 1000**2, "mi": 1 << 20, "mib": 1 << 20, "g": 1000**3, "gb": 1000**3,
             "gi": 1 << 30, "gib": 1 << 30}
    m = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", str(text).strip())
    if not m or m.group(2).lower() not in units:
        raise ValueError(f"unreadable size {text!r}")
    return int(m.group(1)) * units[m.group(2).lower()]


def check_capacity(w, pod, c, app, p):
    """Shutdown time and memory of the pod against the manifest's limits."""
    limits = app.get("application", {}).get("tool", {}).get("fnhost", {})
    try:
        timeout = duration_s(limits.get("request_timeout", f"{DEFAULT_REQUEST_TIMEOUT_S}s"))
        guest = size_bytes(limits.get("memory_limit", DEFAULT_MEMORY_LIMIT))
        for comp in app.get("component", {}).values():
            own = comp.get("tool", {}).get("fnhost", {})
            if "request_timeout" in own:
                timeout = max(timeout, duration_s(own["request_timeout"]))
            if "memory_limit" in own:
                guest = max(guest, size_bytes(own["memory_limit"]))
        pod_memory = size_bytes(c.get("resources", {}).get("limits", {}).get("memory", "0"))
    except ValueError as e:
        p.add(w, f"spin.toml / container resources: {e}")
        return
    pre_stop = ((c.get("lifecycle", {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    need = pre_stop + timeout + DRAIN_BEYOND_TIMEOUT_S
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < need:
        p.add(w, f"terminationGracePeriodSeconds {grace} is below preStop {pre_stop} s + fnhost's "
                 f"drain {timeout + DRAIN_BEYOND_TIMEOUT_S} s = {need} s")
    concurrent = limits.get("max_concurrent_requests")
    if concurrent is None:
        p.add(w, "spin.toml: set [application.tool.fnhost] max_concurrent_requests (its default "
                 "follows the CPU count, not the pod's memory limit)")
    elif concurrent * guest + HOST_MEMORY > pod_memory:
        p.add(w, f"memory: max_concurrent_requests {concurrent} x memory_limit {guest >> 20} MiB "
                 f"+ {HOST_MEMORY >> 20} MiB for the host exceeds the container limit "
                 f"{pod_memory >> 20} MiB")


def check_render(name, docs, schema, p):
    """Checks one rendering; returns (files dirs read by spin.toml, configmap item paths)."""
    w = f"[{name}]"
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        p.add(w, f"expected exactly one Deployment, found {len(deployments)}")
        return set(), {}
    dep = deployments[0]
    dname = dep["metadata"]["name"]
    spec = dep["spec"]
    tmpl = spec["template"]
    pod_labels = tmpl["metadata"].get("labels", {})
    pod = tmpl["spec"]
    containers = pod.get("containers", [])
    if len(containers) != 1:
        p.add(w, f"Deployment {dname}: expected one container, found {len(containers)}")
        return set(), {}
    c = containers[0]
    args = c.get("args", [])

    if not selects(spec.get("selector", {}).get("matchLabels"), pod_labels):
        p.add(w, f"Deployment {dname}: spec.selector does not match the pod template labels")
    ru = spec.get("strategy", {}).get("rollingUpdate", {})
    if spec.get("strategy", {}).get("type") != "RollingUpdate" or ru.get("maxUnavailable") != 0:
        p.add(w, f"Deployment {dname}: strategy must be RollingUpdate with maxUnavailable 0")

    # Listeners from the container args.
    if not args or args[0] != "up":
        p.add(w, f"container {c['name']}: args must start with the `up` subcommand, got {args!r}")
    listen_addr = arg_value(args, "--listen")
    listen = port_of(listen_addr)
    admin_addr = arg_value(args, "--admin-listen") or "127.0.0.1:3001"  # fnhost's default
    admin = port_of(admin_addr)
    metrics = port_of(arg_value(args, "--metrics-listen"))
    if listen is None:
        p.add(w, "container args: `--listen HOST:PORT` missing or malformed")
    elif listen_addr.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]"):
        p.add(w, f"container args: --listen {listen_addr} is loopback; the Service cannot reach it")
    if admin is None:
        p.add(w, f"container args: --admin-listen {admin_addr!r} is malformed")
    elif admin in (listen, metrics):
        p.add(w, "container args: the admin listener shares a port with another listener")
    if listen is not None and resolve_port(c, listen) is None:
        p.add(w, f"container {c['name']}: --listen port {listen} is not a declared containerPort")
    if metrics is not None and resolve_port(c, metrics) is None:
        p.add(w, f"container {c['name']}: --metrics-listen port {metrics} is not a declared containerPort")
    if admin is not None and resolve_port(c, admin) is not None:
        p.add(w, f"container {c['name']}: the admin port {admin} is declared as a containerPort; "
                 "keep the admin API off the pod network (--admin-listen 127.0.0.1:PORT)")

    # Probes.
    for probe, (path, flag) in PROBES.items():
        pr = c.get(probe)
        if not pr or "httpGet" not in pr:
            p.add(w, f"container {c['name']}: {probe} must be an httpGet probe on {path}")
            continue
        hg = pr["httpGet"]
        if hg.get("path") != path:
            p.add(w, f"container {c['name']}: {probe} path {hg.get('path')!r} is not {path!r}")
        want = port_of(arg_value(args, flag))
        if resolve_port(c, hg.get("port")) != want:
            p.add(w, f"container {c['name']}: {probe} port {hg.get('port')!r} is not the "
                     f"{flag} port {want}")

    # Secrets: the admin token through the environment, never a Secret volume.
    if not any(e.get("name") == "FNHOST_ADMIN_TOKEN"
               and "secretKeyRef" in (e.get("valueFrom") or {}) for e in c.get("env", [])):
        p.add(w, f"container {c['name']}: FNHOST_ADMIN_TOKEN must come from a Secret "
                 "(env valueFrom.secretKeyRef)")
    for v in pod.get("volumes", []):
        if "secret" in v:
            p.add(w, f"volume {v['name']}: Secret volumes are group-readable under fsGroup and "
                     "fnhost refuses such token files; pass the token as FNHOST_ADMIN_TOKEN")

    # Services.
    services = [d for d in docs if d.get("kind") == "Service"]
    if not services:
        p.add(w, "no Service")
    for s in services:
        sname = s["metadata"]["name"]
        if not selects(s["spec"].get("selector"), pod_labels):
            p.add(w, f"Service {sname}: selector {s['spec'].get('selector')} does not match "
                     f"pod labels {pod_labels}")
        for sp in s["spec"].get("ports", []):
            target = resolve_port(c, sp.get("targetPort", sp.get("port")))
            if target is None:
                p.add(w, f"Service {sname} port {sp.get('port')}: targetPort "
                         f"{sp.get('targetPort')!r} is not a container port")
            elif target == admin:
                p.add(w, f"Service {sname} port {sp.get('port')}: exposes the admin listener "
                         f"({admin}); only the public listener may be exposed")
            elif target != listen:
                p.add(w, f"Service {sname} port {sp.get('port')}: targets {target}, "
                         f"but fnhost listens on {listen}")

    # Volumes and mounts.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])

    def mount_for(path):
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        return best

    for flag in ("--cache-dir", "--state-dir"):
        d = arg_value(args, flag)
        m = mount_for(d) if d else None
        if d is None:
            p.add(w, f"container args: {flag} missing")
        elif m is None:
            p.add(w, f"container args: {flag} {d} is not on a mounted volume "
                     "(the root filesystem is read-only)")
        elif m.get("readOnly") or "emptyDir" not in volumes.get(m["name"], {}):
            p.add(w, f"container args: {flag} {d} must be a writable emptyDir")

    manifest = arg_value(args, "--manifest")
    m = mount_for(manifest) if manifest else None
    cm_vol = volumes.get(m["name"], {}).get("configMap") if m else None
    if manifest is None:
        p.add(w, "container args: --manifest missing")
        return set(), {}
    if cm_vol is None:
        p.add(w, f"--manifest {manifest} is not inside a ConfigMap volume mount")
        return set(), {}
    if m.get("subPath") or m.get("subPathExpr"):
        p.add(w, f"volumeMount {m['name']}: subPath mounts never receive ConfigMap updates; "
                 "mount the ConfigMap as a directory")
    cms = [d for d in docs if d.get("kind") == "ConfigMap"
           and d["metadata"]["name"] == cm_vol.get("name")]
    if len(cms) != 1:
        p.add(w, f"ConfigMap {cm_vol.get('name')!r} (mounted at {m['mountPath']}) is not in the rendering")
        return set(), {}
    cm = cms[0]
    data = cm.get("data", {}) or {}
    size = sum(len(v.encode()) for v in data.values()) + sum(
        len(v) * 3 // 4 for v in (cm.get("binaryData") or {}).values())
    if size >= CONFIGMAP_LIMIT:
        p.add(w, f"ConfigMap {cm_vol['name']}: {size} bytes, over the 1 MiB limit "
                 "(modules must come by URL, not inside the ConfigMap)")
    mount_root = m["mountPath"].rstrip("/")
    items = cm_vol.get("items")
    if items is None:
        projected = {k: f"{mount_root}/{k}" for k in data}
    else:
        projected = {}
        for it in items:
            if it["key"] not in data:
                p.add(w, f"ConfigMap {cm_vol['name']}: projected key {it['key']!r} does not exist "
                         "(the pod could not start)")
            projected[it["key"]] = posixpath.normpath(f"{mount_root}/{it['path']}")
        for k in data:
            if k not in projected:
                p.add(w, f"ConfigMap {cm_vol['name']}: key {k!r} is not projected into the pod, "
                         "so fnhost cannot read it")
    manifest_keys = [k for k, path in projected.items() if path == posixpath.normpath(manifest)]
    if manifest_keys != ["spin.toml"]:
        p.add(w, f"--manifest {manifest}: expected it to be the ConfigMap key 'spin.toml', "
                 f"found keys {manifest_keys}")
        return set(), projected
    text = data["spin.toml"]

    # spin.toml itself.
    try:
        app = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        p.add(w, f"spin.toml does not parse as TOML: {e}")
        return set(), projected
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(app), key=lambda e: list(e.path))
    for e in errors:
        where = "/".join(str(x) for x in e.path) or "(root)"
        p.add(w, f"spin.toml violates Spin's manifest schema at {where}: {e.message}")
    check_capacity(w, pod, c, app, p)
    components = app.get("component", {})
    for t in app.get("trigger", {}).get("http", []):
        if t.get("component") not in components:
            p.add(w, f"spin.toml: trigger route {t.get('route')!r} names undefined component "
                     f"{t.get('component')!r}")
    manifest_dir = posixpath.dirname(posixpath.normpath(manifest))
    insecure = app.get("application", {}).get("tool", {}).get("fnhost", {}).get(
        "insecure_registries", [])
    egress_ports = {int(x["port"]) for d in docs if d.get("kind") == "NetworkPolicy"
                    for rule in d["spec"].get("egress", [])
                    for x in rule.get("ports", []) if str(x.get("port", "")).isdigit()}
    read_dirs = set()
    for cid, comp in components.items():
        for what, src, files in sources_of(comp):
            at = f"spin.toml component.{cid}.{what}"
            if not isinstance(src, dict) or set(src) != {"url", "digest"}:
                p.add(w, f"{at}: must be {{ url = \"oci://...\", digest = \"sha256:...\" }} "
                         f"(modules do not fit in ConfigMaps), got {src!r}")
                continue
            if not DIGEST_RE.match(src["digest"]):
                p.add(w, f"{at}.digest {src['digest']!r} is not sha256:<64 lowercase hex>")
            m = OCI_RE.match(src["url"])
            if not m:
                p.add(w, f"{at}.url {src['url']!r} is not a registry reference "
                         "oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:...]")
            else:
                port = m.group("port")
                registry = m.group("host") + (f":{port}" if port else "")
                plain = registry in insecure
                port = int(port) if port else (80 if plain else 443)
                if port not in egress_ports:
                    p.add(w, f"{at}.url: the registry {registry} is reached on port {port} "
                             f"({'http' if plain else 'https'}), which no NetworkPolicy egress "
                             f"rule opens (open: {sorted(egress_ports)})")
            for f in files:
                if not isinstance(f, dict):
                    p.add(w, f"{at}: files entry {f!r}: use {{ source = DIR, destination = ... }}")
                    continue
                d = posixpath.normpath(posixpath.join(manifest_dir, f["source"]))
                read_dirs.add(d)
                if not any(path.startswith(d + "/") for path in projected.values()):
                    p.add(w, f"{at}: files source {f['source']!r} ({d}) has no file in the "
                             "ConfigMap projection")

    # Objects that must point at the Deployment's pods.
    for d in docs:
        kind, mdn = d.get("kind"), d["metadata"]["name"]
        if kind == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            if (ref.get("kind"), ref.get("name")) != ("Deployment", dname):
                p.add(w, f"HPA {mdn}: scaleTargetRef {ref} is not Deployment {dname}")
            if d["spec"].get("minReplicas", 1) < 2:
                p.add(w, f"HPA {mdn}: minReplicas below 2 leaves no redundancy")
        elif kind == "PodDisruptionBudget":
            if not selects(d["spec"]["selector"].get("matchLabels"), pod_labels):
                p.add(w, f"PDB {mdn}: selector does not match the pods")
        elif kind == "NetworkPolicy":
            if not selects(d["spec"]["podSelector"].get("matchLabels"), pod_labels):
                p.add(w, f"NetworkPolicy {mdn}: podSelector does not match the pods")
            for rule in d["spec"].get("egress", []):
                ports = {str(x.get("port")) for x in rule.get("ports", [])}
                if ports <= {"53"} and ports:
                    continue
                blocks = [t.get("ipBlock") for t in rule.get("to", [])]
                v4 = [b for b in blocks if b and ":" not in b["cidr"]]
                if not rule.get("to") or any(b is None for b in blocks) or not v4 or any(
                        METADATA_CIDR not in b.get("except", []) for b in v4):
                    p.add(w, f"NetworkPolicy {mdn}: egress to ports {sorted(ports) or 'all'} "
                             f"must be ipBlocks whose IPv4 blocks except {METADATA_CIDR} "
                             "(cloud metadata services)")
            for rule in d["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    if resolve_port(c, port.get("port")) is None:
                        p.add(w, f"NetworkPolicy {mdn}: ingress port {port.get('port')!r} is "
                                 "not a container port")
        elif kind == "ServiceAccount" and mdn != pod.get("serviceAccountName"):
            p.add(w, f"ServiceAccount {mdn} is not the pods' serviceAccountName")
    if pod.get("serviceAccountName") not in {d["metadata"]["name"] for d in docs
                                             if d.get("kind") == "ServiceAccount"}:
        p.add(w, f"serviceAccountName {pod.get('serviceAccountName')!r} is not defined here")

    return read_dirs, projected


def without_spin_toml(docs):
    out = {}
    for d in docs:
        d = copy.deepcopy(d)
        if d.get("kind") == "ConfigMap":
            (d.get("data") or {}).pop("spin.toml", None)
        out[key(d)] = d
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema", required=True, help="Spin manifest v2 JSON schema")
    ap.add_argument("--base", required=True, help="NAME=FILE of the base rendering")
    ap.add_argument("renders", nargs="*", help="NAME=FILE of overlay renderings")
    a = ap.parse_args()
    with open(a.schema, encoding="utf-8") as f:
        schema = json.load(f)
    p = Problems()
    renders = []
    for spec in [a.base] + a.renders:
        name, _, path = spec.partition("=")
        renders.append((name, load(path)))

    all_read, all_projected = set(), {}
    for name, docs in renders:
        read, projected = check_render(name, docs, schema, p)
        all_read |= read
        all_projected.update(projected)
        print(f"checked {name}: {len(docs)} objects")

    base_name, base_docs = renders[0]
    base = without_spin_toml(base_docs)
    for name, docs in renders[1:]:
        other = without_spin_toml(docs)
        for k in sorted(set(base) | set(other), key=str):
            if base.get(k) != other.get(k):
                p.add(f"[{name}]", f"{k[0]} {k[2]} differs from {base_name}: overlays may only "
                                   "change spin.toml in the ConfigMap")
    for k, path in sorted(all_projected.items()):
        if k == "spin.toml":
            continue
        if not any(path.startswith(d + "/") for d in all_read):
            p.add("[all]", f"ConfigMap key {k!r} (mounted at {path}) is read by no spin.toml "
                           "in base or overlays")

    for line in p.items:
        print("FAIL " + line)
    if p.items:
        print(f"{len(p.items)} cross-check(s) failed")
        return 1
    print(f"cross-checks passed for {len(renders)} renderings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
