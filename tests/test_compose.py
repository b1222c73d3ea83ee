"""docker-compose.yml is valid for Debian's docker-compose (no engine needed to validate), with
and without its `cluster` profile; what the profile runs is checked against the real options."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.errors import BrokerError
from lab.stack.nats_config import PLACEHOLDER

ROOT = Path(__file__).resolve().parent.parent
# Ports INSIDE the containers that docker-compose.yml declares (the standard MQTT and MQTT/TLS
# ports: each container has its own network namespace). No test binds them; the file's text is
# checked against them.
MQTT_PORT, MQTTS_PORT = 1883, 8883


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="scripts/setup installs docker-compose")
def test_compose_file_validates(tmp_path: Path) -> None:
    for profile in ([], ["--profile", "cluster"]):
        ok = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *profile,
                             "config", "-q"], capture_output=True, text=True, cwd=ROOT, check=False)
        assert ok.returncode == 0, (profile, ok.stderr)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("restart:", "restartt:", 1))
    bad = subprocess.run(["docker-compose", "-f", str(broken), "config", "-q"], capture_output=True,
                         text=True, cwd=ROOT, check=False)
    assert bad.returncode != 0 and "restartt" in bad.stderr  # the validator really checks keys


def test_compose_mounts_the_lab_broker_config() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "./broker_config/mosquitto.conf:/mosquitto/config/mosquitto.conf" in text
    for service in ("broker:", "ingest:", "devices:"):
        assert service in text


def test_the_image_holds_every_package_the_project_installs() -> None:
    """`pip install .` in the Dockerfile needs each package pyproject.toml names copied in
    first (analysis/ was once missing), and compose runs a service for each process."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [p.rstrip("*") for p in include["include"]]
    docker = (ROOT / "Dockerfile").read_text()
    missing = [p for p in packages if f"COPY {p} ./{p}" not in docker]
    assert not missing, f"the Dockerfile does not copy {missing}"
    compose = (ROOT / "docker-compose.yml").read_text()
    for service in ("ingest:", "analysis:", "devices:"):
        assert service in compose


def test_compose_is_secure_as_ecgpipe_up_is() -> None:
    """The secrets service provisions first; ingest and the devices log in with the same
    secrets over TLS; the broker gets its own files and listens on MQTTS_PORT only."""
    # the default stack: the file up to the `cluster` profile (the insecure lab, checked below)
    compose = (ROOT / "docker-compose.yml").read_text().split(CLUSTER_MARK)[0]
    assert "ecgpipe --state-dir /state provision --devices 20" in compose
    assert compose.count('"--secrets-dir", "/state/secrets", "--tls"') == 2
    assert compose.count("condition: service_completed_successfully") == 3  # broker, ingest, devices
    assert compose.count(f'"--port", "{MQTTS_PORT}"') == 2 and f'"--port", "{MQTT_PORT}"' not in compose
    assert f'"127.0.0.1:{MQTTS_PORT}:{MQTTS_PORT}"' in compose and f":{MQTT_PORT}:" not in compose
    assert "broker-secrets:/mosquitto/secrets:ro" in compose
    conf = (ROOT / "broker_config" / "mosquitto.conf").read_text()
    for path in ("/mosquitto/secrets/tls/ca.pem", "/mosquitto/secrets/tls/broker.pem",
                 "/mosquitto/secrets/tls/broker.key", "/mosquitto/secrets/broker/passwd",
                 "/mosquitto/secrets/broker/acl"):
        copied_to = path.replace("/mosquitto/secrets", "/broker-secrets").rsplit("/", 1)[0]
        assert path in conf and copied_to in compose
    assert "allow_anonymous false" in conf and "require_certificate true" in conf


# ---- the `cluster` profile: the scale-out stack (issue 13) -----------------------------------

CLUSTER_MARK = "# ---- Profile `cluster`"
DEFAULT_SERVICES = {"broker", "secrets", "ingest", "analysis", "devices"}
NODES = ("nats-1", "nats-2", "nats-3")
WORKERS = ("ingest-1", "ingest-2", "ingest-3")
CLUSTER_SERVICES = {*NODES, "postgres", *WORKERS, "cluster-devices"}
PG_DSN = "postgresql://postgres@postgres:5432/ecgpipe"
NATS_COMPOSE_DIR = ROOT / "broker_config" / "nats" / "compose"
GENERATED_HEADER = (
    "# GENERATED from broker_config/nats/node.conf for docker-compose.yml's `cluster` profile: do not\n"
    "# edit; `.venv/bin/python -m tests.test_compose` writes all three again (tests/test_compose.py\n"
    "# fails while they differ from the template). Container ports: clients 4222, routes 6222 to the\n"
    "# other nodes by service name, MQTT 1883, monitoring 8222; JetStream on the node's own volume.\n\n"
)


def compose_node_configs() -> dict[str, str]:
    """node.conf rendered for each container: lab.stack.nats_config's own renderer, listening on
    every interface, routes to the other two nodes' service names, JetStream under /data."""
    from lab.stack.nats_config import NodePorts, NodeSettings, render_node

    @dataclass(frozen=True)
    class ComposeNode(NodeSettings):
        route_hosts: tuple[str, ...] = ()

        def values(self, config_dir: Path | None = None) -> dict[str, str]:
            routes = "\n".join(f"    nats-route://{h}:{self.ports.cluster}" for h in self.route_hosts)
            return {**super().values(config_dir), "routes": routes}

    ports = NodePorts(client=4222, cluster=6222, mqtt=MQTT_PORT, http=8222)
    return {name: GENERATED_HEADER + render_node(ComposeNode(
        name=name, ports=ports, store_dir=Path("/data/jetstream"), peers=(), host="0.0.0.0",  # noqa: S104 inside its container: the other nodes and clients come over the compose network
        route_hosts=tuple(n for n in NODES if n != name))) for name in NODES}


def _resolved(*profile: str) -> dict[str, Any]:
    """docker-compose's own reading of the file (merge keys applied), as a dict: its `config`
    output parsed by the YAML module of the interpreter docker-compose runs on."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("scripts/setup installs docker-compose")
    shebang = Path(exe).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    if not shebang.startswith("#!") or "python" not in shebang:
        pytest.skip("docker-compose is not the Python docker-compose 1.x")
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *profile, "config"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    as_json = subprocess.run(
        [*shebang[2:].split(), "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=out, capture_output=True, text=True, check=True).stdout
    config: dict[str, Any] = json.loads(as_json)
    return config


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_the_cluster_profile_is_separate_from_the_default_stack() -> None:
    services = _resolved("--profile", "cluster")["services"]
    assert set(services) == DEFAULT_SERVICES | CLUSTER_SERVICES
    for name in CLUSTER_SERVICES:
        assert services[name].get("profiles") == ["cluster"], name
        assert set(services[name].get("networks", {})) == {"cluster"}, name  # not on the default one
        assert set(_depends(services[name])) <= CLUSTER_SERVICES, name
    for name in DEFAULT_SERVICES:  # `docker-compose up` (no profile) starts exactly these
        assert "profiles" not in services[name], name
        assert not set(_depends(services[name])) & CLUSTER_SERVICES, name
        assert "cluster" not in services[name].get("networks", {}), name
    # `--profile cluster up cluster-devices` alone brings the whole scale-out stack up
    assert set(_depends(services["cluster-devices"])) | {"nats-2", "nats-3", "postgres"} \
        >= CLUSTER_SERVICES - {"cluster-devices"}
    # insecure lab: nothing but the nodes' monitoring is published, and only on loopback
    published = [p for name in CLUSTER_SERVICES for p in services[name].get("ports", [])]
    assert sorted(str(p).removesuffix("/tcp") for p in published) == [
        "127.0.0.1:8222:8222", "127.0.0.1:8223:8222", "127.0.0.1:8224:8222"]
    assert "THE INSECURE LAB" in (ROOT / "docker-compose.yml").read_text()


def test_every_ingest_worker_uses_all_three_nodes_and_postgres() -> None:
    from ingest.__main__ import build_parser

    services = _resolved("--profile", "cluster")["services"]
    workers = []
    for k, name in enumerate(WORKERS, start=1):
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", "ingest"], name
        args = build_parser().parse_args(command[3:])  # the real options: a typo exits here
        assert sorted(args.nats) == [f"nats://{n}:4222" for n in NODES], name
        assert sorted(args.mqtt_servers) == [(n, MQTT_PORT) for n in NODES], name
        assert args.store_dsn == PG_DSN and args.worker == str(k) and args.acks, name
        assert args.host is None and args.secrets_dir is None, name
        assert _depends(services[name]) == {**dict.fromkeys(NODES, "service_started"),
                                            "postgres": "service_healthy"}, name
        assert f"/state/ingest/ready-{k}.json" in " ".join(services[name]["healthcheck"]["test"])
        workers.append((args.nats[0], args.mqtt_servers[0]))
    assert len(set(workers)) == 3  # each worker starts on its own node
    pg = services["postgres"]
    assert pg["image"] == "postgres:15" and "ports" not in pg
    assert pg["environment"] == {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "ecgpipe"}
    assert pg["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert any(str(v).endswith(":/var/lib/postgresql/data:rw") for v in pg["volumes"])


def test_the_cluster_fleet_speaks_mqtt311_to_a_node() -> None:
    from devices.__main__ import parse_config

    fleet = _resolved("--profile", "cluster")["services"]["cluster-devices"]
    assert fleet["command"][:3] == ["python", "-m", "devices"]
    config = parse_config(fleet["command"][3:])
    assert config.mqtt311 and (config.host, config.port) == ("nats-1", MQTT_PORT)
    assert config.delivery == "end-to-end" and config.secrets_dir is None
    assert _depends(fleet)["ingest-1"] == "service_healthy"  # the consumer exists before readings


def test_the_nats_configs_compose_mounts_exist_and_match_the_template() -> None:
    services = _resolved("--profile", "cluster")["services"]
    expected = compose_node_configs()
    for name in NODES:
        node = services[name]
        assert node["image"] == "nats:2.9.10-alpine", name
        mounts = dict(str(v).rsplit(":", 2)[:2] for v in node["volumes"])  # source -> target
        conf_source = next(src for src, dst in mounts.items() if dst == "/etc/nats/nats-server.conf")
        conf = Path(conf_source)
        assert conf == NATS_COMPOSE_DIR / f"{name}.conf", name
        text = conf.read_text()
        assert text == expected[name], f"{conf} is stale: run .venv/bin/python -m tests.test_compose"
        assert "no_advertise: true" in text and f'server_name: "{name}"' in text
        assert not PLACEHOLDER.search(text) and 'store_dir: "/data/jetstream"' in text
        assert "/data" in mounts.values(), name  # JetStream on the node's own volume
        routes = sorted(re.findall(r"nats-route://([a-z0-9-]+):6222", text))
        assert routes == [n for n in NODES if n != name], name
        assert node["command"] == ["nats-server", "--config", "/etc/nats/nats-server.conf"]
    data = {v.split(":", 1)[0] for name in NODES for v in services[name]["volumes"]}
    assert {"nats-1-data", "nats-2-data", "nats-3-data"} <= data


def test_the_committed_node_configs_are_rendered_from_the_template() -> None:
    """Without docker-compose too: the three files are node.conf rendered, nothing edited."""
    for name, text in compose_node_configs().items():
        path = NATS_COMPOSE_DIR / f"{name}.conf"
        assert path.read_text() == text, f"{path} is stale: run .venv/bin/python -m tests.test_compose"
        assert "no_advertise: true" in text
        assert f"./broker_config/nats/compose/{name}.conf:/etc/nats/nats-server.conf:ro" in (
            ROOT / "docker-compose.yml").read_text()


def test_the_node_configs_are_valid_for_nats_server() -> None:
    """Debian's nats-server 2.9.10, the version of the image, checks each file (`-t`, no start)."""
    from lab.stack.nats_config import nats_binary

    try:
        binary = nats_binary()
    except BrokerError:
        pytest.skip("scripts/setup installs nats-server")
    for name in NODES:
        done = subprocess.run([binary, "-c", str(NATS_COMPOSE_DIR / f"{name}.conf"), "-t"],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "is valid" in done.stderr + done.stdout, done.stderr


if __name__ == "__main__":  # regenerate broker_config/nats/compose/ after node.conf changes
    NATS_COMPOSE_DIR.mkdir(parents=True, exist_ok=True)
    for node_name, rendered in compose_node_configs().items():
        (NATS_COMPOSE_DIR / f"{node_name}.conf").write_text(rendered)
        print(f"wrote {NATS_COMPOSE_DIR / node_name}.conf")
