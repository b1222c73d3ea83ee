"""docker-compose.yml is valid for Debian's docker-compose (no engine needed to validate)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="scripts/setup installs docker-compose")
def test_compose_file_validates(tmp_path: Path) -> None:
    ok = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
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
    secrets over TLS; the broker gets its own files and listens on 8883 only."""
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "ecgpipe --state-dir /state provision --devices 20" in compose
    assert compose.count('"--secrets-dir", "/state/secrets", "--tls"') == 2
    assert compose.count("condition: service_completed_successfully") == 3  # broker, ingest, devices
    assert compose.count('"--port", "8883"') == 2 and '"--port", "1883"' not in compose
    assert '"127.0.0.1:8883:8883"' in compose and ":1883:" not in compose
    assert "broker-secrets:/mosquitto/secrets:ro" in compose
    conf = (ROOT / "broker_config" / "mosquitto.conf").read_text()
    for path in ("/mosquitto/secrets/tls/ca.pem", "/mosquitto/secrets/tls/broker.pem",
                 "/mosquitto/secrets/tls/broker.key", "/mosquitto/secrets/broker/passwd",
                 "/mosquitto/secrets/broker/acl"):
        copied_to = path.replace("/mosquitto/secrets", "/broker-secrets").rsplit("/", 1)[0]
        assert path in conf and copied_to in compose
    assert "allow_anonymous false" in conf and "require_certificate true" in conf
