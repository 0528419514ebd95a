"""Runs every check of deploy/ and exits non-zero on any failure."""

import sys
import tomllib

from . import compose, dashboard, kube
from .common import DEPLOY, Failures, load_json, load_yaml_all, rel


def parse_all(failures):
    """Every YAML, JSON and TOML file under deploy/ parses."""
    count = 0
    for path in sorted(DEPLOY.rglob("*")):
        loader = {
            ".yaml": load_yaml_all,
            ".yml": load_yaml_all,
            ".json": load_json,
            ".toml": lambda p: tomllib.loads(p.read_text()),
        }.get(path.suffix)
        if loader is None:
            continue
        try:
            loader(path)
            count += 1
        except Exception as e:  # any parse error is the finding
            failures.add(rel(path), f"does not parse: {e}")
    return count


def main():
    failures = Failures()
    parsed = parse_all(failures)
    print(f"parsed {parsed} YAML, JSON and TOML files under deploy/")
    for name, check in [
        ("compose", compose.check),
        ("kubernetes", kube.check),
        ("dashboard", dashboard.check),
    ]:
        before = len(failures.items)
        summary = check(failures)
        status = "ok" if len(failures.items) == before else "FAILED"
        print(f"{name}: {status} ({summary})")
    for f in failures.items:
        print(f"  {f}", file=sys.stderr)
    if failures.items:
        print(f"check-deploy: {len(failures.items)} failures", file=sys.stderr)
        return 1
    print("check-deploy: all deploy files valid")
    return 0


sys.exit(main())
