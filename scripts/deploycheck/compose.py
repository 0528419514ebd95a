"""deploy/docker-compose.yml against the Compose Specification's JSON Schema
(the copy check-jsonschema ships, so no network is needed), its files and
the Prometheus configuration that scrapes its sluice roles."""

import json
from importlib import metadata, resources

import jsonschema

from .common import DEPLOY, load_yaml, rel

COMPOSE = DEPLOY / "docker-compose.yml"
ROLES = {"ingest", "relay", "worker", "admin", "serve"}


def compose_schema():
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def check(failures):
    where = rel(COMPOSE)
    doc = load_yaml(COMPOSE)
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for e in validator.iter_errors(doc):
        path = ".".join(str(p) for p in e.absolute_path)
        failures.add(where, f"Compose schema: {path}: {e.message}")

    services = doc.get("services", {})
    sluice = {n: s for n, s in services.items() if s.get("image") == "sluice:dev"}
    failures.check(sluice, where, "no service runs the sluice image")
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            failures.check((context / build["dockerfile"]).is_file(), where,
                           f"{name}: Dockerfile {build['dockerfile']} not found")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                failures.check((COMPOSE.parent / source).exists(), where,
                               f"{name}: mounted {source} does not exist")
    for name, svc in sluice.items():
        failures.check(svc.get("command", ["serve"])[0] in ROLES, where,
                       f"{name}: command {svc.get('command')} is not a sluice role")
        config = svc.get("environment", {}).get("SLUICE_CONFIG")
        mounts = [v.split(":")[1] for v in svc.get("volumes", [])]
        failures.check(config in mounts, where,
                       f"{name}: SLUICE_CONFIG {config} is not a mounted file")
    check_prometheus(failures, set(sluice))
    version = metadata.version("check-jsonschema")
    return f"{len(services)} services against compose-spec.json of check-jsonschema {version}"


def check_prometheus(failures, sluice_services):
    path = DEPLOY / "prometheus.yml"
    scraped = set()
    for job in load_yaml(path).get("scrape_configs", []):
        for sd in job.get("dns_sd_configs", []):
            scraped.update(sd.get("names", []))
    missing = sluice_services - scraped
    failures.check(not missing, rel(path), f"sluice services not scraped: {sorted(missing)}")
