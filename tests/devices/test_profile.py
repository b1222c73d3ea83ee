from __future__ import annotations

import pytest

from devices.errors import DeviceError, ProfileError
from devices.profile import HR_RANGE, HRV_RANGE, PatientProfile, fleet_profiles


def test_fleet_profiles_are_deterministic_and_not_on_a_grid() -> None:
    a = fleet_profiles(200, seed=7)
    assert a == fleet_profiles(200, seed=7)
    assert a != fleet_profiles(200, seed=8)
    assert all(HR_RANGE[0] <= p.hr_bpm <= HR_RANGE[1] for p in a)
    assert all(HRV_RANGE[0] <= p.hrv <= HRV_RANGE[1] for p in a)
    # every device its own signal: rates to 0.1 bpm, not a 5-bpm grid, and its own seed
    assert len({p.hr_bpm for p in a}) > 150
    assert any(p.hr_bpm % 5 for p in a)
    assert len({p.seed for p in a}) == 200


@pytest.mark.parametrize("kw", [
    {"hr_bpm": 10}, {"hr_bpm": 500}, {"hrv": -1}, {"noise": -0.1}, {"noise": 2},
    {"seed": -1}, {"seed": 2**32}, {"seed": 1.5}, {"hr_bpm": "60"},
])
def test_profile_rejects_out_of_range_values(kw: dict[str, object]) -> None:
    good: dict[str, object] = {"hr_bpm": 60, "hrv": 1.0, "noise": 0.01, "seed": 1}
    with pytest.raises(ProfileError) as info:
        PatientProfile(**{**good, **kw})  # type: ignore[arg-type]
    assert isinstance(info.value, DeviceError)


def test_profile_is_frozen() -> None:
    p = PatientProfile(60, 1.0, 0.01, 3)
    with pytest.raises(AttributeError):
        p.hr_bpm = 70  # type: ignore[misc]
    assert p.hr_bpm == 60.0 and isinstance(p.hr_bpm, float)
