"""The Grafana dashboard and its provisioning: every metric a panel queries
is documented in docs/metrics.md, every documented metric has a panel, and
the data source and `$queue` variable the panels use exist."""

import re

from .common import DEPLOY, documented_metrics, load_json, load_yaml, rel

DASHBOARD = DEPLOY / "grafana/dashboards/sluice.json"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def metric_of(series, documented):
    if series in documented:
        return series
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and documented.get(base) == "histogram":
            return base
    return None


def check(failures):
    where = rel(DASHBOARD)
    dash = load_json(DASHBOARD)
    documented = documented_metrics()
    failures.check(len(documented) > 20, "docs/metrics.md", "no metrics table")
    sources = {d["uid"] for d in load_yaml(DEPLOY / "grafana/provisioning/datasources/datasources.yml")["datasources"]}
    variables = {v["name"] for v in dash["templating"]["list"]}
    failures.check("queue" in variables, where, "no $queue template variable")
    used = set()
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    for p in panels:
        title = p["title"]
        failures.check(p["datasource"]["uid"] in sources, where,
                       f"panel {title!r}: data source {p['datasource']['uid']} is not provisioned")
        failures.check(p.get("targets"), where, f"panel {title!r} has no query")
        for t in p.get("targets", []):
            for var in re.findall(r"\$(\w+)", t["expr"]):
                failures.check(var in variables or var.startswith("__"), where,
                               f"panel {title!r}: unknown variable ${var}")
            for series in re.findall(r"\bsluice_[a-z_]+", t["expr"]):
                metric = metric_of(series, documented)
                if failures.check(metric, where, f"panel {title!r}: {series} is not in docs/metrics.md"):
                    used.add(metric)
    for name in sorted(set(documented) - used):
        failures.add(where, f"documented metric {name} has no panel")
    return f"{len(panels)} panels cover {len(used)} of {len(documented)} documented metrics"
