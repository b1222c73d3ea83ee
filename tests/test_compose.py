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


def test_compose_signs_acks_as_ecgpipe_up_does() -> None:
    """Ingest and the devices get the same ack key file, made by the secrets service first."""
    compose = (ROOT / "docker-compose.yml").read_text()
    assert '"python", "-m", "ecgcore.secrets", "/state/secrets/ack.key"' in compose
    assert compose.count('"--ack-key-file", "/state/secrets/ack.key"') == 2
    assert compose.count("condition: service_completed_successfully") == 2
