"""The configuration each deploy recipe hands the `freya` binary, checked by the binary itself:
every compose service's TOML with the FREYA_* variables its `environment` sets, and every
Kubernetes ConfigMap's TOML with the variables its pod sets (Secret values and pod fields by
stand-ins of the right shape), must pass `freya control|edge --check`. Used by
deploy/check_recipes.py.
"""

import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

# Values for compose's required variables (.env.example leaves them empty), shaped as Freya
# wants them.
COMPOSE_ENV = {"POSTGRES_PASSWORD": "x", "FREYA_EDGES_SHARED_SECRET": "x" * 32,
               "FREYA_JWT_SECRET": "x" * 32, "FREYA_ENCRYPTION_KEY": "0" * 64}
# Stand-ins for the Kubernetes Secret's CHANGE-ME values and for the pod fields an env names.
K8S_SECRET_STAND_INS = {"encryption-key": "0" * 64, "jwt-secret": "j" * 40,
                        "edge-join-token": ".".join(["freya-join", "1" * 16, "2" * 64, "3" * 64])}
K8S_FIELD_STAND_INS = {"spec.nodeName": "node-1", "status.hostIP": "203.0.113.10",
                       "status.podIP": "10.0.0.10", "metadata.name": "freya-edge-0"}


def freya_check(freya, role, toml_text, env, tmp):
    """`freya ROLE --check` on a configuration text with these FREYA_* variables: its complaint,
    or None when the binary would start with them."""
    path = Path(tmp) / f"{role}-{abs(hash(toml_text))}.toml"
    path.write_text(toml_text)
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    run = subprocess.run([str(freya), role, "--check", "--config", str(path)],
                         capture_output=True, text=True, env=clean, timeout=60)
    return None if run.returncode == 0 else (run.stderr or run.stdout).strip()


def compose_variables(value, defined):
    """A compose value with `${VAR}`, `${VAR:-default}` and `${VAR:?message}` filled in."""
    def fill(match):
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if defined.get(name):
            return defined[name]
        return rest if op == ":-" else ""
    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", fill, str(value))


def check_configs(root, freya, docs):
    """The configuration each recipe hands the binary — the compose services' and the
    Kubernetes ConfigMaps' TOML with the FREYA_* variables the service or pod sets — is one
    `freya control|edge --check` accepts."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        compose_dir = root / "deploy/container"
        compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
        for name, service in compose.get("services", {}).items():
            command = service.get("command") or []
            if command[:1] not in (["control"], ["edge"]) or "--config" not in command:
                continue
            inside = command[command.index("--config") + 1]
            mounts = [str(v).split(":") for v in service.get("volumes", [])]
            host = next((m[0] for m in mounts if len(m) > 1 and m[1] == inside), None)
            if host is None:
                problems.append(f"compose.yaml: {name} mounts nothing at {inside}")
                continue
            env = {k: compose_variables(v, COMPOSE_ENV)
                   for k, v in (service.get("environment") or {}).items()}
            said = freya_check(freya, command[0], (compose_dir / host).read_text(), env, tmp)
            if said:
                problems.append(f"compose.yaml: `freya {command[0]} --check` refuses {name}'s "
                                f"configuration: {said}")
        maps = {d["metadata"]["name"]: d.get("data", {}) for _, d in docs
                if d.get("kind") == "ConfigMap"}
        secrets = {d["metadata"]["name"]: d.get("stringData", {}) for _, d in docs
                   if d.get("kind") == "Secret"}
        for file, doc in docs:
            template = (doc.get("spec") or {}).get("template", {}).get("spec", {})
            volumes = {v["name"]: v for v in template.get("volumes", [])}
            for container in template.get("containers", []):
                args = container.get("args") or []
                if args[:1] not in (["control"], ["edge"]) or "--config" not in args:
                    continue
                inside = Path(args[args.index("--config") + 1])
                mount = next((m for m in container.get("volumeMounts", [])
                              if Path(m["mountPath"]) == inside.parent), None)
                source = (volumes.get(mount["name"], {}).get("configMap") or {}) if mount else {}
                text = maps.get(source.get("name"), {}).get(inside.name)
                if text is None:
                    problems.append(f"{file}: no ConfigMap holds {inside}")
                    continue
                env = {}
                for var in container.get("env", []):
                    ref = var.get("valueFrom") or {}
                    if "value" in var:
                        value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""),
                                       str(var["value"]))
                    elif "secretKeyRef" in ref:
                        key = ref["secretKeyRef"]["key"]
                        value = secrets.get(ref["secretKeyRef"]["name"], {}).get(key)
                        if value is None:
                            continue
                        if "CHANGE-ME" in value:
                            value = K8S_SECRET_STAND_INS.get(
                                key, value.replace("CHANGE-ME", "placeholder"))
                    elif "fieldRef" in ref:
                        value = K8S_FIELD_STAND_INS.get(ref["fieldRef"]["fieldPath"], "x")
                    else:
                        continue
                    env[var["name"]] = value
                said = freya_check(freya, args[0], text, env, tmp)
                if said:
                    problems.append(f"{file}: `freya {args[0]} --check` refuses its "
                                    f"configuration: {said}")
    return problems
