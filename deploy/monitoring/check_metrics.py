#!/usr/bin/env python3
"""Checks that every Freya metric the alerting rules and the Grafana dashboard name is exported.

Usage: check_metrics.py SCRAPE_URL... (each a /metrics endpoint of a running `freya dev`: the
control plane's and the edge's). Reads deploy/monitoring/alerts.yml and grafana-dashboard.json
beside this file, collects every `freya_edge_*` / `freya_control_*` / `freya_certificate_*`
name in them, and fails
naming each one no endpoint declares (`# TYPE`). Histogram series (`_bucket`, `_count`, `_sum`)
and counter samples (`_total`) are matched to their family. Metrics from other exporters
(`up`, the blackbox exporter's `probe_ssl_earliest_cert_expiry`) are not Freya's to export.
"""

import json
import pathlib
import re
import sys
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
NAME = re.compile(r"\bfreya_(?:edge|control|certificate)_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def named_in_files():
    rules = (HERE / "alerts.yml").read_text()
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = set(NAME.findall(rules))
    for expr in exprs:
        names.update(NAME.findall(expr))
    return names


def families(text):
    found = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            found.add(line.split()[2])
    return found


def family_of(name, exported):
    if name in exported:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return None


def main(urls):
    if not urls:
        print(__doc__, file=sys.stderr)
        return 2
    exported = set()
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as response:
            exported |= families(response.read().decode())
    names = named_in_files()
    missing = sorted(n for n in names if family_of(n, exported) is None)
    if missing:
        print("named by the rules or the dashboard but not exported:", file=sys.stderr)
        for name in missing:
            print(f"  {name}", file=sys.stderr)
        return 1
    print(f"all {len(names)} Freya metrics the rules and the dashboard name are exported")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
