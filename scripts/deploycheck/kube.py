"""The Kubernetes manifests, rendered per overlay: built-in kinds against the
Kubernetes schemas kubernetes-validate ships (strict, oldest supported and
newest version), ScaledObjects against deploy/schemas, and the references
between objects, to the config file, and to the HTTP contract."""

import functools
import tomllib
from urllib.parse import urlparse

import jsonschema
from kubernetes_validate import utils as k8s
from kubernetes_validate.utils import (
    SchemaNotFoundError,
    ValidationError,
    VersionNotSupportedError,
    latest_version,
)

from . import kustomize
from .common import DEPLOY, load_json, openapi_paths, rel, scaling_fields

K8S = DEPLOY / "k8s"
# the oldest Kubernetes the manifests support, and the newest schemas at hand
VERSIONS = ("1.29.0", latest_version())
KEDA = load_json(DEPLOY / "schemas/keda-scaledobject-v1alpha1.json")
# each validation reads the multi-megabyte definitions file again: read once
k8s.schema_contents = functools.lru_cache(maxsize=None)(k8s.schema_contents)


def check(failures):
    read = set()
    overlays = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
    count = 0
    for overlay in overlays:
        where = rel(overlay)
        try:
            objs = kustomize.render(overlay, read)
        except kustomize.RenderError as e:
            failures.add(where, str(e))
            continue
        count += len(objs)
        for o in objs:
            validate(failures, where, o)
        Refs(failures, where, objs).check()
    for path in sorted(K8S.rglob("*")):
        if path.is_file() and path.resolve() not in read:
            failures.add(rel(path), "not used by any overlay")
    return (f"{len(overlays)} overlays, {count} objects, Kubernetes {' and '.join(VERSIONS)}"
            f" schemas, KEDA ScaledObject schema")


def validate(failures, where, obj):
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("kind") == "ScaledObject":
        for e in jsonschema.Draft7Validator(KEDA).iter_errors(obj):
            path = ".".join(str(p) for p in e.absolute_path)
            failures.add(where, f"{name}: {path}: {e.message}")
        spec = obj.get("spec", {})
        failures.check(spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), where,
                       f"{name}: minReplicaCount above maxReplicaCount")
        return
    for version in VERSIONS:
        try:
            k8s.validate(obj, version, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            failures.add(where, f"{name} (Kubernetes {version}): {path}: {e.message}")
        except (SchemaNotFoundError, VersionNotSupportedError) as e:
            failures.add(where, f"{name}: {e.message}")


class Refs:
    """Checks that what one object names exists in the rendered set."""

    def __init__(self, failures, where, objs):
        self.f, self.where = failures, where
        self.by_kind = {}
        for o in objs:
            self.by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        config = self.named("ConfigMap", "sluice-config")["data"]["sluice.toml"]
        self.queues = {q["name"] for q in tomllib.loads(config).get("queues", [])}
        self.env = set(self.named("ConfigMap", "sluice-env")["data"])
        self.env |= set(self.named("Secret", "sluice-secrets")["stringData"])

    def named(self, kind, name):
        return self.by_kind.get(kind, {}).get(name) or {"data": {}, "stringData": {}}

    def fail_unless(self, ok, message):
        self.f.check(ok, self.where, message)

    def check(self):
        deployments = self.by_kind.get("Deployment", {})
        self.fail_unless(len(deployments) >= 4, "expected ingest, relay, worker and admin Deployments")
        for name, d in deployments.items():
            self.deployment(name, d)
        for kind in ("Service", "PodDisruptionBudget"):
            for name, o in self.by_kind.get(kind, {}).items():
                sel = o["spec"]["selector"]
                sel = sel.get("matchLabels", sel)
                self.fail_unless(any(sel.items() <= labels(d).items() for d in deployments.values()),
                                 f"{kind}/{name}: selector {sel} matches no Deployment")
        self.fail_unless(self.by_kind.get("PodDisruptionBudget"), "no PodDisruptionBudget")
        scaled = {}
        for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            for name, o in self.by_kind.get(kind, {}).items():
                target = o["spec"]["scaleTargetRef"]["name"]
                self.fail_unless(target in deployments, f"{kind}/{name}: no Deployment {target}")
                self.fail_unless(target not in scaled, f"{kind}/{name}: {target} already scaled by {scaled.get(target)}")
                scaled[target] = f"{kind}/{name}"
                if kind == "ScaledObject" and target in deployments:
                    self.triggers(name, o, deployments[target])

    def deployment(self, name, d):
        self.fail_unless(d["spec"]["selector"]["matchLabels"].items() <= labels(d).items(),
                         f"Deployment/{name}: selector does not match its pods")
        spec = d["spec"]["template"]["spec"]
        for v in spec.get("volumes", []):
            if "configMap" in v:
                self.fail_unless(v["configMap"]["name"] in self.by_kind.get("ConfigMap", {}),
                                 f"Deployment/{name}: no ConfigMap {v['configMap']['name']}")
        for c in spec["containers"]:
            role = c.get("args", ["serve"])[0]
            self.fail_unless(role in {"ingest", "relay", "worker", "admin"},
                             f"Deployment/{name}: {role} is not a sluice role")
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = c.get(probe, {}).get("httpGet")
                if self.f.check(get, self.where, f"Deployment/{name}: no HTTP {probe}"):
                    self.fail_unless(get["path"] in openapi_paths(),
                                     f"Deployment/{name}: {probe} path {get['path']} is not served")
                    self.fail_unless(get["port"] in ports, f"Deployment/{name}: {probe} port {get['port']}")
            self.fail_unless(c.get("resources", {}).get("requests"), f"Deployment/{name}: no resource requests")
            for q in queue_args(c):
                self.fail_unless(q in self.queues, f"Deployment/{name}: --queue {q} is not configured")

    def triggers(self, name, so, target):
        queues = [q for c in target["spec"]["template"]["spec"]["containers"] for q in queue_args(c)]
        for t in so["spec"]["triggers"]:
            m, kind = t["metadata"], t["type"]
            if kind == "metrics-api":
                url = urlparse(m["url"])
                queue = url.path.split("/")[3] if url.path.count("/") == 4 else None
                self.fail_unless(url.path == f"/v1/queues/{queue}/scaling" and queue in self.queues,
                                 f"ScaledObject/{name}: {m['url']} is not a configured queue's scaling URL")
                self.fail_unless(url.hostname in self.by_kind.get("Service", {}),
                                 f"ScaledObject/{name}: no Service {url.hostname}")
                self.fail_unless(m["valueLocation"] in scaling_fields(),
                                 f"ScaledObject/{name}: {m['valueLocation']} is not a scaling field")
            elif kind == "kafka":
                self.fail_unless([f"sluice.{q}" for q in queues] == [m["topic"]],
                                 f"ScaledObject/{name}: topic {m['topic']} is not its workers' ({queues})")
                self.fail_unless(m["consumerGroup"] == f"sluice-workers.{m['topic'].removeprefix('sluice.')}",
                                 f"ScaledObject/{name}: consumer group {m['consumerGroup']}")
            elif kind == "rabbitmq":
                self.fail_unless([f"sluice.{q}" for q in queues] == [m["queueName"]],
                                 f"ScaledObject/{name}: queue {m['queueName']} is not its workers' ({queues})")
                self.fail_unless(m.get("hostFromEnv") in self.env,
                                 f"ScaledObject/{name}: hostFromEnv {m.get('hostFromEnv')} is not in the pods' env")
            else:
                self.fail_unless(False, f"ScaledObject/{name}: unexpected trigger {kind}")


def labels(deployment):
    return deployment["spec"]["template"]["metadata"].get("labels", {})


def queue_args(container):
    args = container.get("args", [])
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--queue"]
