#!/usr/bin/env python3
"""Validates the deploy recipes the way CI can without a service manager, a container engine
or a cluster: systemd units with `systemd-analyze verify` and the hardening they promise, the
Containerfile and compose file against deploy/packages/runtime.txt and each other (and
`docker compose config` where a compose plugin is installed), and every Kubernetes manifest
against the Kubernetes schemas (`kubernetes-validate --strict`, offline) and the
drain/readiness wiring; the configuration each of them hands the binary (its TOML with the
FREYA_* variables the service or pod sets) with `freya control|edge --check`; the monitoring recipe against the runbook (an entry per alert in
deploy/README.md, section 7) and the Grafana dashboard (a panel per alert, every metric an
alert reads on some panel).

    deploy/check_recipes.py --freya target/debug/freya          # check the recipes
    deploy/check_recipes.py --freya target/debug/freya --self-test

--self-test breaks a copy of the recipes in each way a check guards against and fails unless
every check notices: a check that cannot fail is no check. Exit status 0 when all is well.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from recipe_configs import COMPOSE_ENV, check_configs

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_FREYA = "/usr/local/bin/freya"


def drain_deadline(toml_text):
    """[drain] deadline_seconds in a TOML text (commented or not), else the default, 300."""
    section = re.search(r"^\[drain\](.*?)(^\[|\Z)", toml_text, re.S | re.M)
    if section:
        found = re.search(r"^#?\s*deadline_seconds\s*=\s*(\d+)", section.group(1), re.M)
        if found:
            return int(found.group(1))
    return 300


def unit_settings(text):
    """The `Key=Value` lines of a unit, each key's values in order."""
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def seconds(value):
    """A systemd time span in seconds (`360`, `360s`, `6min`, `6min 30s`)."""
    total = 0
    for number, unit in re.findall(r"(\d+)\s*(min|s|m|h)?", value):
        total += int(number) * {"": 1, "s": 1, "min": 60, "m": 60, "h": 3600}[unit]
    return total


def check_systemd(root, freya):
    problems = []
    units = root / "deploy/systemd"
    edge_example = (root / "deploy/edge.example.toml").read_text()
    deadline = drain_deadline(edge_example)
    capacity = int(re.search(r"^capacity\s*=\s*(\d+)", edge_example, re.M).group(1))
    with tempfile.TemporaryDirectory() as tmp:
        # verify needs ExecStart's binary to exist: point the copies at the one just built.
        link = Path(tmp) / "freya"
        link.symlink_to(Path(freya).resolve())
        copies = []
        for name in ("freya-control.service", "freya-edge.service"):
            path = units / name
            if not path.exists():
                problems.append(f"{name}: missing")
                continue
            copy = Path(tmp) / name
            copy.write_text(path.read_text().replace(INSTALLED_FREYA, str(link)))
            copies.append(copy)
        if copies:
            verified = subprocess.run(
                ["systemd-analyze", "verify", *map(str, copies)],
                capture_output=True, text=True)
            said = (verified.stdout + verified.stderr).strip()
            if verified.returncode != 0 or said:
                problems.append(f"systemd-analyze verify: {said or verified.returncode}")
    for name, need_nofile in (
        ("freya-control.service", 5358),
        # 12 descriptors a call at [legs] max_per_call 4, plus listeners' caps (see the unit).
        ("freya-edge.service", 12 * capacity + 5220),
    ):
        path = units / name
        if not path.exists():
            continue
        s = unit_settings(path.read_text())
        one = lambda key: (s.get(key) or [""])[-1]
        if one("User") in ("", "root", "0"):
            problems.append(f"{name}: User= must name a dedicated user")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("Restart", "on-failure")):
            if one(key) != want:
                problems.append(f"{name}: {key}={want} expected, found {one(key)!r}")
        if not one("StateDirectory"):
            problems.append(f"{name}: StateDirectory= expected (the only writable place)")
        caps = one("CapabilityBoundingSet").split()
        allowed = {"CAP_NET_BIND_SERVICE"} if "edge" in name else set()
        if "CapabilityBoundingSet" not in s or not set(caps) <= allowed:
            problems.append(f"{name}: CapabilityBoundingSet= must be empty"
                            + (" or CAP_NET_BIND_SERVICE" if allowed else "")
                            + f", found {caps}")
        nofile = one("LimitNOFILE")
        if not nofile.isdigit() or int(nofile) < need_nofile:
            problems.append(f"{name}: LimitNOFILE={nofile} below the {need_nofile} needed")
        if "edge" in name and seconds(one("TimeoutStopSec")) <= deadline:
            problems.append(f"{name}: TimeoutStopSec={one('TimeoutStopSec')} must be longer "
                            f"than [drain] deadline_seconds ({deadline})")
    return problems


def runtime_packages(root):
    """deploy/packages/runtime.txt as (building, running) package names."""
    building, running, section = [], [], None
    for line in (root / "deploy/packages/runtime.txt").read_text().splitlines():
        if line.startswith("# Building"):
            section = building
        elif line.startswith("# Running"):
            section = running
        elif line.strip() and not line.startswith("#") and section is not None:
            section.append(line.split()[0])
    return building, running


def containerfile_stages(text):
    """Each stage of a Containerfile: (FROM line, packages apt-get installs, other lines)."""
    joined = re.sub(r"\\\n", " ", text)
    stages = []
    for line in joined.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            stages.append({"from": line, "packages": set(), "lines": []})
        elif stages:
            stages[-1]["lines"].append(line)
            for install in re.findall(r"apt-get install ([^&;]*)", line):
                stages[-1]["packages"].update(
                    w for w in install.split() if not w.startswith("-"))
    return stages


def check_container(root):
    problems = []
    building, running = runtime_packages(root)
    text = (root / "deploy/container/Containerfile").read_text()
    stages = containerfile_stages(text)
    if len(stages) < 2:
        return ["Containerfile: a multi-stage build expected"]
    build, final = stages[0], stages[-1]
    if "slim" not in final["from"] or "debian" not in final["from"]:
        problems.append(f"Containerfile: the runtime stage must be slim Debian: {final['from']}")
    for package in running:
        if package not in final["packages"]:
            problems.append(f"Containerfile: runtime stage lacks {package} (runtime.txt)")
    for package in building:
        if package not in build["packages"]:
            problems.append(f"Containerfile: build stage lacks {package} (runtime.txt)")
    for package in ("build-essential", "cmake"):
        if package in final["packages"]:
            problems.append(f"Containerfile: {package} in the runtime stage (not slim)")
    users = [l.split()[1] for l in final["lines"] if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Containerfile: the runtime stage must switch to a non-root USER")
    checks = [l for l in final["lines"] if l.upper().startswith("HEALTHCHECK")]
    if not checks or "readyz" not in " ".join(checks) + " ".join(final["lines"]):
        problems.append("Containerfile: a HEALTHCHECK on /readyz expected")

    compose = yaml.safe_load((root / "deploy/container/compose.yaml").read_text())
    services = compose.get("services", {})
    edges = [n for n, s in services.items() if "edge" in (s.get("command") or [""])[0:1]]
    controls = [n for n, s in services.items() if "control" in (s.get("command") or [""])[0:1]]
    if "postgres" not in services:
        problems.append("compose.yaml: a postgres service expected")
    if len(controls) != 1:
        problems.append(f"compose.yaml: one control service expected, found {controls}")
    if len(edges) < 2:
        problems.append(f"compose.yaml: two edges expected, found {edges}")
    edge_toml = root / "deploy/container/config/edge.toml"
    deadline = drain_deadline(edge_toml.read_text()) if edge_toml.exists() else 300
    taken = {}
    for name, service in services.items():
        check = (service.get("healthcheck") or {}).get("test")
        if not check:
            problems.append(f"compose.yaml: {name} has no healthcheck")
        elif name in edges + controls and "/readyz" not in " ".join(check):
            problems.append(f"compose.yaml: {name}'s healthcheck must ask /readyz")
        for port in service.get("ports", []):
            host = str(port).split(":")[0]
            proto = str(port).rsplit("/", 1)[1] if "/" in str(port) else "tcp"
            first, _, last = host.partition("-")
            for p in range(int(first), int(last or first) + 1):
                if (p, proto) in taken:
                    problems.append(f"compose.yaml: host port {p}/{proto} of {name} is "
                                    f"also {taken[(p, proto)]}'s")
                taken[(p, proto)] = name
    for name in edges:
        service = services[name]
        env = service.get("environment", {})
        ports = " ".join(map(str, service.get("ports", [])))
        low, high = env.get("FREYA_RTP__PORT_MIN"), env.get("FREYA_RTP__PORT_MAX")
        if not low or f"{low}-{high}:{low}-{high}/udp" not in ports:
            problems.append(f"compose.yaml: {name} must publish its RTP range {low}-{high}/udp "
                            "on the same host ports")
        sip = env.get("FREYA_SIP__ADDR", "0.0.0.0:5060").rsplit(":", 1)[1]
        if f"{sip}:{sip}/udp" not in ports:
            problems.append(f"compose.yaml: {name} must publish SIP {sip}/udp")
        grace = seconds(str(service.get("stop_grace_period", "10s")))
        if grace <= deadline:
            problems.append(f"compose.yaml: {name}'s stop_grace_period must be longer than "
                            f"the drain deadline ({deadline} s)")
    return problems


def compose_config(root):
    """`docker compose config` when a compose plugin works here (it needs no daemon)."""
    for engine in (["docker", "compose"], ["podman", "compose"], ["docker-compose"]):
        if shutil.which(engine[0]) is None:
            continue
        probe = subprocess.run([*engine, "version"], capture_output=True, text=True)
        if probe.returncode != 0:
            continue
        env = dict(os.environ, **COMPOSE_ENV)
        run = subprocess.run([*engine, "-f", str(root / "deploy/container/compose.yaml"),
                              "config", "--quiet"], capture_output=True, text=True, env=env)
        if run.returncode != 0:
            return [f"{' '.join(engine)} config: {run.stderr.strip()}"], " ".join(engine)
        return [], " ".join(engine)
    return [], None


def k8s_manifests(root):
    """Every manifest under deploy/kubernetes, its variants (autoscaled/) included."""
    return sorted((root / "deploy/kubernetes").rglob("*.y*ml"))


def k8s_documents(root):
    docs = []
    base = root / "deploy/kubernetes"
    for path in k8s_manifests(root):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((str(path.relative_to(base)), doc))
    return docs


def check_kubernetes(root):
    problems = []
    files = [str(p) for p in k8s_manifests(root)]
    if not files:
        return ["deploy/kubernetes: no manifests"]
    validated = subprocess.run(["kubernetes-validate", "--strict", "--quiet", *files],
                               capture_output=True, text=True)
    if validated.returncode != 0:
        problems.append("kubernetes-validate: " + (validated.stdout + validated.stderr).strip())
    docs = k8s_documents(root)
    kinds = {}
    for name, doc in docs:
        kinds.setdefault(doc.get("kind"), []).append((name, doc))
    labels = lambda d: d["spec"]["template"]["metadata"]["labels"]
    controls = [(n, d) for n, d in kinds.get("Deployment", [])
                if "control" in d["spec"]["template"]["spec"]["containers"][0].get("args", [])]
    if not controls:
        problems.append("kubernetes: a control-plane Deployment expected")
    for name, deployment in controls:
        if deployment["spec"].get("replicas", 1) < 2:
            problems.append(f"{name}: the control plane should run several replicas")
        pod = labels(deployment)
        covers = lambda sel: sel and all(pod.get(k) == v for k, v in sel.items())
        if not any(covers(d["spec"].get("selector")) for _, d in kinds.get("Service", [])):
            problems.append(f"{name}: no Service selects the control plane")
        if not any(covers(d["spec"]["selector"].get("matchLabels"))
                   for _, d in kinds.get("PodDisruptionBudget", [])):
            problems.append(f"{name}: no PodDisruptionBudget covers the control plane")
    edges = [(n, d) for n, d in kinds.get("DaemonSet", []) + kinds.get("StatefulSet", [])
             if "edge" in d["spec"]["template"]["spec"]["containers"][0].get("args", [])]
    if not edges:
        problems.append("kubernetes: edges as a DaemonSet or StatefulSet expected")
    deadline = 300
    for _, doc in kinds.get("ConfigMap", []):
        if "edge.toml" in doc.get("data", {}):
            deadline = drain_deadline(doc["data"]["edge.toml"])
    for name, edge in edges:
        spec = edge["spec"]["template"]["spec"]
        container = spec["containers"][0]
        if not spec.get("hostNetwork") and "RTP" not in Path(root / "deploy/kubernetes" / name).read_text():
            problems.append(f"{name}: hostNetwork or a documented RTP port range expected")
        if (container.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append(f"{name}: readiness must ask /readyz (503 while draining)")
        if not (container.get("lifecycle") or {}).get("preStop"):
            problems.append(f"{name}: a preStop hook that drains expected")
        if spec.get("terminationGracePeriodSeconds", 30) <= deadline:
            problems.append(f"{name}: terminationGracePeriodSeconds must be longer than the "
                            f"drain deadline ({deadline} s)")
    for name, hpa in kinds.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        namespace = hpa["metadata"].get("namespace")
        if not any(d.get("kind") == ref["kind"] and d["metadata"]["name"] == ref["name"]
                   and d["metadata"].get("namespace") == namespace for _, d in docs):
            problems.append(f"{name}: scales {ref['kind']} {ref['name']} in namespace "
                            f"{namespace}, which no manifest here makes")
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for _, d in kinds.get("Secret", [])}
    maps = {d["metadata"]["name"] for _, d in kinds.get("ConfigMap", [])}
    if not secrets or not maps:
        problems.append("kubernetes: ConfigMaps and Secrets expected")
    for name, doc in docs:
        template = (doc.get("spec") or {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []) + template.get("initContainers", []):
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional") and ref["key"] not in secrets.get(ref["name"], ()):
                    problems.append(f"{name}: {env['name']} names {ref['name']}/{ref['key']}, "
                                    "which no Secret here has")
        for volume in template.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in maps:
                problems.append(f"{name}: volume {volume['name']} names a missing ConfigMap")
    return problems


def check_cockroachdb(root):
    """Every table the migrations create has its locality in the multi-region recipe."""
    recipe = (root / "deploy/cockroachdb/multi-region.sql").read_text()
    placed = set(re.findall(r"^ALTER TABLE (\w+) SET LOCALITY", recipe, re.M))
    problems = []
    for migration in sorted((root / "control/migrations").glob("*.sql")):
        for table in re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", migration.read_text()):
            if table not in placed:
                problems.append(f"cockroachdb/multi-region.sql: table {table} "
                                f"({migration.name}) has no locality")
    return problems


def metric_families(expr):
    """The metric families a PromQL expression reads (histogram series to their family)."""
    names = set(re.findall(r"\b(?:freya|probe)_[a-z0-9_]+\b", expr))
    if re.search(r"\bup\s*\{", expr):
        names.add("up")
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def check_monitoring(root):
    """Every alert has its entry in the runbook (deploy/README.md, section 7) and a dashboard
    panel naming it, and the dashboard shows every metric an alert reads."""
    problems = []
    monitoring = root / "deploy/monitoring"
    rules = yaml.safe_load((monitoring / "alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    runbook = (root / "deploy/README.md").read_text()
    section = re.search(r"^## 7\. Monitoring and alerts$(.*?)(?=^## |\Z)", runbook, re.M | re.S)
    entries = set(re.findall(r"^### (\w+)$", section.group(1), re.M)) if section else set()
    if not section:
        problems.append("deploy/README.md: section 7, \"Monitoring and alerts\", is missing")
    for name in sorted(set(alerts) - entries):
        problems.append(f"deploy/README.md, section 7: no entry for the alert {name}")
    for name in sorted(entries - set(alerts)):
        problems.append(f"deploy/README.md, section 7: {name} is no alert of alerts.yml")
    dashboard = json.loads((monitoring / "grafana-dashboard.json").read_text())
    described = " ".join(p.get("description", "") for p in dashboard["panels"])
    shown = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            shown |= metric_families(target["expr"])
    for name, expr in sorted(alerts.items()):
        if not re.search(rf"\b{name}\b", described):
            problems.append(f"grafana-dashboard.json: no panel names the alert {name}")
        for family in sorted(metric_families(expr) - shown):
            problems.append(f"grafana-dashboard.json: {family} (read by {name}) is on no panel")
    return problems


def check_all(root, freya):
    problems = (check_systemd(root, freya) + check_container(root) + check_kubernetes(root)
                + check_cockroachdb(root) + check_monitoring(root)
                + check_configs(root, freya, k8s_documents(root)))
    more, engine = compose_config(root)
    return problems + more, engine


# Each way of breaking the recipes that some check must notice: (what, file, old, new).
BREAKAGES = [
    ("an unknown unit key", "deploy/systemd/freya-edge.service",
     "Restart=on-failure", "Restart=on-failure\nRestartSecs=2"),
    ("a stop timeout shorter than the drain", "deploy/systemd/freya-edge.service",
     "TimeoutStopSec=360", "TimeoutStopSec=200"),
    ("a capability kept", "deploy/systemd/freya-control.service",
     "CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_SYS_ADMIN\n"),
    ("too few file descriptors", "deploy/systemd/freya-edge.service",
     "LimitNOFILE=16384", "LimitNOFILE=1024"),
    ("a writable system", "deploy/systemd/freya-control.service",
     "ProtectSystem=strict", "ProtectSystem=full"),
    ("a runtime package missing", "deploy/container/Containerfile",
     "espeak-ng pocketsphinx pocketsphinx-en-us", "pocketsphinx pocketsphinx-en-us"),
    ("no health check", "deploy/container/Containerfile", "HEALTHCHECK", "# HEALTHCHECK"),
    ("running as root", "deploy/container/Containerfile", "USER freya:freya", "USER root"),
    ("an edge whose health check ignores readiness", "deploy/container/compose.yaml",
     'test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8081/readyz"]', 'test: ["CMD", "true"]'),
    ("edges sharing RTP ports", "deploy/container/compose.yaml",
     '"20100-20199:20100-20199/udp"', '"20000-20099:20000-20099/udp"'),
    ("a misspelt Kubernetes field", "deploy/kubernetes/control-deployment.yaml",
     "  replicas: 3", "  replica: 3"),
    ("no preStop hook", "deploy/kubernetes/edge-daemonset.yaml", "preStop:", "postStart:"),
    ("a grace period shorter than the drain", "deploy/kubernetes/edge-daemonset.yaml",
     "terminationGracePeriodSeconds: 360", "terminationGracePeriodSeconds: 60"),
    ("no disruption budget", "deploy/kubernetes/control-pdb.yaml",
     "app.kubernetes.io/name: freya-control", "app.kubernetes.io/name: someone-else"),
    ("an autoscaler scaling nothing", "deploy/kubernetes/autoscaled/edge-hpa.yaml",
     "    name: freya-edge-eu-west\n", "    name: freya-edge\n"),
    ("an autoscaled edge without a preStop hook",
     "deploy/kubernetes/autoscaled/edge-statefulset.yaml", "preStop:", "postStart:"),
    ("a Secret key that does not exist", "deploy/kubernetes/control-deployment.yaml",
     "key: jwt-secret", "key: jwt-secrets"),
    ("a table without a locality", "deploy/cockroachdb/multi-region.sql",
     "ALTER TABLE providers SET LOCALITY GLOBAL;", ""),
    ("a compose edge's configuration the binary refuses", "deploy/container/config/edge.toml",
     "capacity = 50", 'capacity = "fifty"'),
    ("a Kubernetes edge's configuration the binary refuses", "deploy/kubernetes/edge-configmap.yaml",
     "    [sip]\n", "    [sip]\n    adress = \"0.0.0.0:5060\"\n"),
    ("an alert the runbook does not explain", "deploy/README.md",
     "### FreyaWebhookBacklog\n", "### The webhook backlog\n"),
    ("an alert no dashboard panel shows", "deploy/monitoring/grafana-dashboard.json",
     '"expr": "freya_certificate_expiry_timestamp_seconds - time()"', '"expr": "time()"'),
]

# Noticed only by `compose config` itself, so tried only where a compose plugin runs.
COMPOSE_BREAKAGES = [
    ("a misspelt compose key", "deploy/container/compose.yaml",
     "    stop_grace_period: 30s", "    stop_grace_periods: 30s"),
]


def self_test(freya):
    failures = []
    breakages = BREAKAGES + (COMPOSE_BREAKAGES if compose_config(ROOT)[1] else [])
    for what, rel, old, new in breakages:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "repo"
            (copy / "deploy").mkdir(parents=True)
            for part in ("systemd", "container", "kubernetes", "packages", "cockroachdb",
                         "monitoring"):
                shutil.copytree(ROOT / "deploy" / part, copy / "deploy" / part)
            shutil.copy(ROOT / "deploy/README.md", copy / "deploy/README.md")
            shutil.copytree(ROOT / "control/migrations", copy / "control/migrations")
            shutil.copy(ROOT / "deploy/edge.example.toml", copy / "deploy/edge.example.toml")
            target = copy / rel
            text = target.read_text()
            if old not in text:
                failures.append(f"{what}: {rel} no longer contains {old!r}; update BREAKAGES")
                continue
            target.write_text(text.replace(old, new, 1))
            problems, _ = check_all(copy, freya)
            print(f"  {what}: {'noticed' if problems else 'NOT NOTICED'}")
            if not problems:
                failures.append(f"{what}: no check noticed")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freya", required=True, help="a built freya binary")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    problems, engine = check_all(ROOT, args.freya)
    for problem in problems:
        print(f"recipe problem: {problem}", file=sys.stderr)
    print(f"compose config: {'checked with ' + engine if engine else 'no compose plugin here; lint only'}")
    if args.self_test:
        print("self-test: breaking copies of the recipes")
        failures = self_test(args.freya)
        for failure in failures:
            print(f"self-test failure: {failure}", file=sys.stderr)
        problems += failures
    if problems:
        sys.exit(1)
    print("deploy recipes: ok")


if __name__ == "__main__":
    main()
