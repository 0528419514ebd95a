"""What every check shares: the repository root, loaders, the failure list
and the metrics table of docs/metrics.md."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


class Failures:
    """Collects failures, so one run reports all of them."""

    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")

    def check(self, ok, where, message):
        if not ok:
            self.add(where, message)
        return ok


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


def load_yaml_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def openapi_paths():
    """Paths of the ingest listener's contract, held to the code by its tests."""
    return set(load_yaml(ROOT / "schemas/openapi.yaml")["paths"])


def scaling_fields():
    doc = load_yaml(ROOT / "schemas/openapi.yaml")
    return set(doc["components"]["schemas"]["QueueScaling"]["properties"])


def documented_metrics():
    """Metric name -> type, from the table in docs/metrics.md."""
    rows = {}
    for line in (ROOT / "docs/metrics.md").read_text().splitlines():
        m = re.match(r"\| `(sluice_[a-z_]+)` \| (\w+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows
