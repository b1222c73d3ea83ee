from __future__ import annotations

import resource
from pathlib import Path

import pytest

from devices.errors import ConfigError, DeviceError
from devices.fleet import FleetConfig, raise_nofile_limit


def config(tmp_path: Path, **kw: object) -> FleetConfig:
    base: dict[str, object] = {"state_dir": tmp_path, "host": "127.0.0.1", "port": 1,
                               "devices": 2, "delivery": "broker-ack"}
    return FleetConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {"delivery": "exactly-once"}, {"devices": 0}, {"port": 0}, {"outbox_capacity": 0},
    {"outbox_policy": "drop-newest"}, {"speed": 0}, {"speed": float("inf")}, {"seed": -1},
    {"ecg_source": "simple"}, {"id_prefix": "a/b"}, {"id_prefix": "x" * 60},
    {"chunk_seconds": 0}, {"ack_timeout": 0}, {"window": 0}, {"sample_rate": 5000},
])
def test_bad_fleet_settings_are_config_errors(tmp_path: Path, kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, **kw)
    assert isinstance(info.value, DeviceError) and str(info.value)


def test_device_ids_follow_the_architecture(tmp_path: Path) -> None:
    cfg = config(tmp_path, devices=12, id_prefix="ab_c")
    assert cfg.device_ids()[:2] == ["ab_c-0000", "ab_c-0001"] and cfg.device_ids()[-1] == "ab_c-0011"
    assert config(tmp_path, devices=10001).device_ids()[-1] == "hc-10000"
    assert cfg.devices_json == tmp_path / "fleet" / "devices.json"


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"hard limit {hard} leaves nothing to test")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_nofile_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
