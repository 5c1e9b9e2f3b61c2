"""The deployment files agree with the bridge and with each other: the Kubernetes manifests
(deploy/kubernetes, also checked against the Kubernetes API's schemas), the Dockerfile and the
proxy configurations in docs/operations.md. Read and parsed only: no docker, no cluster, no
network."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from realtime_bridge.config import SECRET_VARIABLES, Settings, load_settings
from realtime_bridge.server.app import FORCED_CLOSE_TIMEOUT_S

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
OPERATIONS = ROOT / "docs" / "operations.md"
SECRET_EXAMPLE = "secret.example.yaml"
BRIDGE = "realtime-bridge"

#: Every environment variable the bridge reads: the aliases of its settings.
SETTINGS_NAMES = frozenset(f.alias for f in Settings.model_fields.values() if f.alias)
#: How long a session may last: proxies in front must not end one sooner.
SESSION_MAX_S = float(Settings.model_fields["session_max_duration_s"].default)

Doc = dict[str, Any]


# --- reading ---------------------------------------------------------------------------------


def _load(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


@pytest.fixture(scope="module")
def kustomization() -> Doc:
    (doc,) = _load(KUBE / "kustomization.yaml")
    return doc


@pytest.fixture(scope="module")
def manifests(kustomization: Doc) -> list[Doc]:
    """What ``kubectl apply -k`` applies (the Secret is made out of band)."""
    return [doc for name in kustomization["resources"] for doc in _load(KUBE / name)]


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def deployment(manifests: list[Doc]) -> Doc:
    return _find(manifests, "Deployment", BRIDGE)


@pytest.fixture(scope="module")
def container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    (bridge,) = [c for c in containers if c["name"] == "bridge"]
    return bridge


def _env(container: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _plain_env(container: Doc) -> dict[str, str]:
    return {name: str(e["value"]) for name, e in _env(container).items() if "value" in e}


def _container_port(container: Doc, port: int | str) -> int:
    """A probe's or a Service's target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _prestop_seconds(container: Doc) -> float:
    """The pause before SIGTERM: ``exec: sleep N`` (maybe through a shell) or ``sleep: N``."""
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = " ".join(pre_stop["exec"]["command"])
    match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)\b", command)
    assert match, f"preStop does not pause: {command!r}"
    return float(match.group(1))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _duration_s(value: str | int) -> float:
    """``3700s``, ``62m``, ``1h``, ``0s`` (nginx and protobuf durations), or bare seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", str(value).strip())
    assert match, f"not a duration: {value!r}"
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * scale


# --- Kubernetes ------------------------------------------------------------------------------


def test_the_kustomization_applies_every_manifest_but_the_example_secret(
    kustomization: Doc,
) -> None:
    resources = set(kustomization["resources"])
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    # Applying placeholder secrets over the real ones would break the pods at their restart.
    assert SECRET_EXAMPLE not in resources
    assert resources == on_disk - {SECRET_EXAMPLE}


def test_every_manifest_is_a_valid_kubernetes_object(manifests: list[Doc]) -> None:
    """Against the API's OpenAPI schemas, strictly (an unknown or misplaced field fails), as
    ``kubectl apply`` would check them; the example Secret too."""
    version = kubernetes_validate.latest_version()
    for doc in [*manifests, *_load(KUBE / SECRET_EXAMPLE)]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_readiness_is_health_on_the_http_port(deployment: Doc, container: Doc) -> None:
    http_port = int(_plain_env(container)["HTTP_PORT"])
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/health"
    assert _container_port(container, ready["port"]) == http_port
    # Liveness asks the same endpoint, but gives up later than readiness does.
    live = container["livenessProbe"]
    assert live["httpGet"]["path"] == "/health"
    assert _container_port(container, live["httpGet"]["port"]) == http_port

    def patience(probe: Doc) -> int:
        return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))

    assert patience(live) > patience(container["readinessProbe"])


def test_the_termination_grace_covers_the_pause_and_the_drain(
    deployment: Doc, container: Doc
) -> None:
    pause = _prestop_seconds(container)
    assert pause > 0
    drain = float(_plain_env(container)["SHUTDOWN_GRACE_S"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The countdown starts with preStop; the bridge then drains, and gives the sessions it ends
    # FORCED_CLOSE_TIMEOUT_S to close. Past the grace the kubelet kills it mid-close.
    assert grace >= pause + drain + FORCED_CLOSE_TIMEOUT_S


def test_a_rollout_never_lowers_capacity(deployment: Doc, manifests: list[Doc]) -> None:
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = _find(manifests, "PodDisruptionBudget", BRIDGE)
    labels = spec["template"]["metadata"]["labels"]
    assert _selects(budget["spec"]["selector"]["matchLabels"], labels)


def test_the_bridge_runs_as_the_images_non_root_user(deployment: Doc, container: Doc) -> None:
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    own = container["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["runAsUser"] == _dockerfile_uid()
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert own["capabilities"]["drop"] == ["ALL"]
    # With a read-only root, the supervisor's run directory (tempfile) needs a writable /tmp.
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_the_service_exposes_both_ports(
    deployment: Doc, container: Doc, manifests: list[Doc]
) -> None:
    env = _plain_env(container)
    wanted = {int(env["WS_PORT"]), int(env["HTTP_PORT"])}
    assert len(wanted) == 2
    service = _find(manifests, "Service", BRIDGE)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    # A session stays on its pod by its own connection; affinity would only skew the balance.
    assert service["spec"].get("sessionAffinity", "None") == "None"
    assert _selects(
        service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    targets = {
        _container_port(container, p.get("targetPort", p["port"])) for p in service["spec"]["ports"]
    }
    assert wanted <= targets
    # The proxies in docs/operations.md reach the Service on the container's own port numbers.
    assert wanted <= {p["port"] for p in service["spec"]["ports"]}


def test_redis_runs_beside_the_bridge_and_redis_url_names_its_service(
    container: Doc, manifests: list[Doc]
) -> None:
    url = urlsplit(_plain_env(container)["REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname is not None
    service = _find(manifests, "Service", url.hostname.split(".")[0])
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == (url.port or 6379)]
    deployments = [
        d
        for d in manifests
        if d["kind"] == "Deployment"
        and _selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    ]
    assert len(deployments) == 1
    redis = deployments[0]["spec"]
    assert redis["replicas"] == 1
    (server,) = redis["template"]["spec"]["containers"]
    assert server["image"].split(":")[0].endswith("redis")
    assert _container_port(server, port.get("targetPort", port["port"])) == 6379


def test_every_variable_in_the_manifests_is_a_setting(manifests: list[Doc]) -> None:
    secret = _load(KUBE / SECRET_EXAMPLE)[0]
    names: set[str] = set(secret["stringData"])
    for doc in manifests:
        if doc["kind"] == "Deployment":
            for each in doc["spec"]["template"]["spec"]["containers"]:
                names.update(_env(each))
    unknown = names - SETTINGS_NAMES
    assert not unknown, f"not settings of the bridge: {sorted(unknown)}"


def test_secrets_come_from_the_secret_and_every_key_exists(container: Doc) -> None:
    secret = _load(KUBE / SECRET_EXAMPLE)[0]
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == BRIDGE
    wanted = {"OPENAI_API_KEY", "BRIDGE_API_KEYS", "BRIDGE_SECRET_KEY", "BRIDGE_ADMIN_TOKEN"}
    env = _env(container)
    assert wanted <= set(env)
    for name, entry in env.items():
        if name in SECRET_VARIABLES:
            assert "value" not in entry, f"{name} is a secret: take it from the Secret"
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == BRIDGE
            assert ref["key"] in secret["stringData"]
    # The example's placeholders are not usable values.
    assert all("REPLACE-ME" in str(v) for v in secret["stringData"].values())


def test_the_manifests_settings_load(container: Doc) -> None:
    """The plain values, with secrets of the right shape, make valid settings."""
    env = _plain_env(container)
    env.update(OPENAI_API_KEY="sk-test", BRIDGE_API_KEYS="t1", BRIDGE_SECRET_KEY="k" * 32)
    settings = load_settings(env)
    assert settings.host == "0.0.0.0"
    assert settings.log_format == "json"
    assert settings.shutdown_grace_s == float(env["SHUTDOWN_GRACE_S"])
    # One worker per whole CPU of the limit (auto would count the node's CPUs).
    cpu = str(container["resources"]["limits"]["cpu"])
    assert env["WORKERS"] == cpu
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]


# --- the image -------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    steps = _dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def _dockerfile_uid() -> int:
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users, "the image must name a USER"
    return int(users[-1].split(":")[0])


def _env_names(arguments: str) -> list[str]:
    return [part.split("=", 1)[0] for part in shlex.split(arguments)]


def image_env() -> dict[str, str]:
    """The environment the image's final stage sets (``tests/test_workers.py`` starts a bridge
    with it)."""
    env: dict[str, str] = {}
    for keyword, rest in _final_stage():
        if keyword == "ENV":
            env.update(part.partition("=")[::2] for part in shlex.split(rest))
    return env


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert _dockerfile_uid() >= 1000


def test_the_image_checks_health_and_exposes_both_ports() -> None:
    steps = _final_stage()
    (check,) = [rest for keyword, rest in steps if keyword == "HEALTHCHECK"]
    assert "/health" in check
    assert "CMD" in check
    exposed = {port for keyword, rest in steps if keyword == "EXPOSE" for port in rest.split()}
    assert {"8080", "3000"} <= exposed
    assert "40000-40099/udp" in exposed  # WebRTC media, the range the image sets
    assert ("STOPSIGNAL", "SIGTERM") in steps
    assert ("CMD", '["realtime-bridge"]') in steps
    env = image_env()
    assert env["HOST"] == "0.0.0.0"
    assert env["LOG_FORMAT"] == "json"
    assert "WORKERS" in env
    assert env["WEBRTC_UDP_PORTS"] == "40000-40099"


def test_the_image_holds_no_secrets() -> None:
    steps = _dockerfile()
    named = [
        name for keyword, rest in steps if keyword in ("ENV", "ARG") for name in _env_names(rest)
    ]
    assert not set(named) & SECRET_VARIABLES
    bridge_names = {n for n in named if n in SETTINGS_NAMES or n.startswith("BRIDGE_")}
    assert bridge_names <= SETTINGS_NAMES
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"sk-[A-Za-z0-9_-]{8,}", text)
    assert ".env" not in {rest.split()[0] for keyword, rest in steps if keyword == "COPY"}


def test_the_build_context_leaves_out_secrets_and_clutter() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    reincluded = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    if "*" in patterns:  # everything out, then the package let back in
        assert reincluded <= {"pyproject.toml", "README.md", "src"}
    else:
        assert {".env", ".git", ".venv*", "bench/results"} <= set(patterns)
    assert not reincluded & {".env", ".git", "tests", "bench"}


# --- docs/operations.md ----------------------------------------------------------------------


def _section(title: str) -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/operations.md has no section {title!r}"
    return match.group(1)


def _code_block(section: str, language: str) -> str:
    match = re.search(rf"^```{language}\n(.*?)^```", section, re.M | re.S)
    assert match, f"no {language} block"
    return match.group(1)


def test_the_nginx_example_upgrades_and_outlasts_a_session() -> None:
    config = _code_block(_section("Behind nginx"), "nginx")
    directives = {
        " ".join(line.split()).rstrip(";")
        for line in config.splitlines()
        if line.strip() and not line.strip().startswith("#")
    }
    for wanted in (
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "map $http_upgrade $connection_upgrade {",
        "proxy_buffering off",
        "proxy_set_header Host $host",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
    ):
        assert wanted in directives, wanted
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = [d.split()[1] for d in directives if d.startswith(timeout + " ")]
        assert _duration_s(value) > SESSION_MAX_S, timeout


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_envoy_example_upgrades_and_outlasts_a_session() -> None:
    config = yaml.safe_load(_code_block(_section("Behind Envoy"), "yaml"))
    (manager,) = [
        d["typed_config"]
        for d in _walk(config)
        if d.get("name") == "envoy.filters.network.http_connection_manager"
    ]
    assert {"upgrade_type": "websocket"} in manager["upgrade_configs"]
    assert _duration_s(manager["stream_idle_timeout"]) > SESSION_MAX_S
    assert _duration_s(manager["common_http_protocol_options"]["idle_timeout"]) > SESSION_MAX_S
    filters = [f["name"] for f in manager["http_filters"]]
    assert not [f for f in filters if "buffer" in f]
    routes = [r for d in _walk(manager) for r in d.get("routes", [])]
    upgrades = [
        r for r in routes if any(h["name"] == "upgrade" for h in r["match"].get("headers", []))
    ]
    assert upgrades
    for route in upgrades:
        assert _duration_s(route["route"]["timeout"]) == 0  # no limit on the session
        idle = _duration_s(route["route"].get("idle_timeout", "0s"))  # 0: the manager's
        assert idle == 0 or idle > SESSION_MAX_S
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    ws = clusters[upgrades[0]["route"]["cluster"]]
    ports = {d["port_value"] for d in _walk(ws) if "port_value" in d}
    assert ports == {8080, 3000}  # sessions on 8080, health checks of each pod on 3000
    assert ws["health_checks"][0]["http_health_check"]["path"] == "/health"


def test_operations_covers_draining_and_sizing() -> None:
    drain = _section("Draining and rolling updates")
    for words in ("preStop", "terminationGracePeriodSeconds", "SHUTDOWN_GRACE_S", "1001"):
        assert words in drain
    sizing = _section("Sizing")
    assert "per core" in sizing
    assert "RESUME_MEMORY_BYTES" in sizing
