#!/usr/bin/env python3
"""Checks that every Freya metric the alerting rules and the Grafana dashboard name is exported.

Usage: check_metrics.py SCRAPE_URL... (each a /metrics endpoint of a running `freya dev`: the
control plane's and the edge's). Reads deploy/monitoring/alerts.yml and grafana-dashboard.json
beside this file, collects every `freya_edge_*` / `freya_control_*` / `freya_certificate_*`
name in them, and fails
naming each one no endpoint declares (`# TYPE`). Histogram series (`_bucket`, `_count`, `_sum`)
and counter samples (`_total`) are matched to their family. Metrics from other exporters
(`up`, the blackbox exporter's `probe_ssl_earliest_cert_expiry`) are not Freya's to export.

It also holds every Freya family the endpoints export to Prometheus' naming conventions:
counters' samples end in `_total` and nothing else's does; histograms name their unit
(`_seconds`, `_bytes`); times and sizes are in base units (no `_ms`, `_minutes`, `_kb`); no
label names a call, trace, workspace or phone number (one series per call would grow without
bound), and no family has more than MAX_SERIES series. `check_metrics.py --self-test` shows each
rule refusing a hand-written exposition that breaks it.
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


# Label names that would give each call (or trace, workspace, phone number) a series of its own.
UNBOUNDED_LABELS = {"call_id", "call", "id", "trace_id", "span_id", "workspace_id",
                    "workspace", "number", "phone_number", "from", "to", "caller", "sip_call_id",
                    "user", "email"}
# Units that are not Prometheus' base units, as name parts.
NON_BASE_UNITS = {"ms", "millis", "milliseconds", "us", "microseconds", "ns", "minutes",
                  "hours", "days", "kb", "mb", "gb", "kilobytes", "megabytes", "percent"}
HISTOGRAM_UNITS = ("_seconds", "_bytes")
# Series one family may have on a `freya dev` after a call: labels from fixed sets stay far
# below; a per-call label passes it after a few hundred calls, a per-request one at once.
MAX_SERIES = 200
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def convention_problems(text):
    """Where the Freya families of one OpenMetrics exposition break the naming conventions."""
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
    problems = []
    series = {}
    label_names = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        sample, labels = match.group(1), match.group(3) or ""
        family = next((f for f in types if sample == f or (sample.startswith(f + "_")
                       and sample[len(f):] in ("_total", "_bucket", "_count", "_sum",
                                               "_created", "_info"))), sample)
        pairs = [(k, v) for k, v in LABEL.findall(labels) if k != "le"]
        series.setdefault(family, set()).add(tuple(pairs))
        label_names.setdefault(family, set()).update(k for k, _ in pairs)
        if types.get(family) == "counter" and not sample.endswith(("_total", "_created")):
            problems.append(f"{sample}: a counter's samples end in _total")
    for name, kind in sorted(types.items()):
        if not name.startswith("freya_"):
            continue
        parts = set(name.split("_"))
        if kind != "counter" and name.endswith("_total"):
            problems.append(f"{name}: only counters end in _total ({kind})")
        if kind == "counter" and name.endswith("_total"):
            problems.append(f"{name}: the counter's family repeats _total (samples get _total_total)")
        if kind == "histogram" and not name.endswith(HISTOGRAM_UNITS):
            problems.append(f"{name}: a histogram names its unit ({', '.join(HISTOGRAM_UNITS)})")
        for unit in sorted(parts & NON_BASE_UNITS):
            problems.append(f"{name}: `{unit}` is not a base unit (seconds, bytes, ratio)")
        for label in sorted(label_names.get(name, set()) & UNBOUNDED_LABELS):
            problems.append(f"{name}: label `{label}` makes a series per call or per customer")
        if len(series.get(name, ())) > MAX_SERIES:
            problems.append(f"{name}: {len(series[name])} series (at most {MAX_SERIES})")
    return problems


SELF_TEST = {
    "a counter without _total": "# TYPE freya_edge_calls counter\nfreya_edge_calls 1\n",
    "a gauge ending in _total": "# TYPE freya_edge_calls_total gauge\nfreya_edge_calls_total 1\n",
    "a histogram without a unit":
        "# TYPE freya_edge_setup histogram\nfreya_edge_setup_count 1\n",
    "milliseconds": "# TYPE freya_edge_setup_ms gauge\nfreya_edge_setup_ms 1\n",
    "a call id as a label":
        '# TYPE freya_edge_rtp_lost_packets counter\n'
        'freya_edge_rtp_lost_packets_total{call_id="c1"} 1\n',
    "too many series": "# TYPE freya_edge_active_calls gauge\n" + "".join(
        f'freya_edge_active_calls{{slot="{n}"}} 1\n' for n in range(MAX_SERIES + 1)),
}


def self_test():
    failures = [what for what, text in SELF_TEST.items() if not convention_problems(text)]
    sound = "# TYPE freya_edge_calls_ended counter\nfreya_edge_calls_ended_total{reason=\"x\"} 1\n"
    if convention_problems(sound):
        failures.append(f"a sound counter refused: {convention_problems(sound)}")
    for failure in failures:
        print(f"self-test: not refused: {failure}", file=sys.stderr)
    print(f"self-test: {len(SELF_TEST) - len(failures)} of {len(SELF_TEST)} breakages refused")
    return 1 if failures else 0


def main(urls):
    if urls == ["--self-test"]:
        return self_test()
    if not urls:
        print(__doc__, file=sys.stderr)
        return 2
    exported = set()
    problems = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        exported |= families(text)
        problems += [f"{url}: {p}" for p in convention_problems(text)]
    names = named_in_files()
    missing = sorted(n for n in names if family_of(n, exported) is None)
    if missing:
        print("named by the rules or the dashboard but not exported:", file=sys.stderr)
        for name in missing:
            print(f"  {name}", file=sys.stderr)
    if problems:
        print("exported against Prometheus' naming conventions:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    if missing or problems:
        return 1
    print(f"all {len(names)} Freya metrics the rules and the dashboard name are exported; "
          f"the {len([n for n in exported if n.startswith('freya_')])} Freya families keep "
          "to the naming conventions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
