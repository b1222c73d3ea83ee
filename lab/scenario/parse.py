"""Scenario TOML files: parse and validate them into the model, with errors that name the file
and the line of the offending key (lab.scenario.locator).

    parse.py          the document: its top level, its variants and their expectations
    tables.py         the keys of each table and the conversion of their values; [fleet], [broker]
    fault_windows.py  the [[faults]] entries, fixed or at seeded random moments
    episodes.py       the [[episodes]] entries: rhythms scheduled on the timeline
    locator.py        the line of a key, and the ScenarioErrors that name it
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.modes import DELIVERY_MODES
from lab.checker.expect import Expectation
from lab.scenario.attacks import attacks
from lab.scenario.episodes import check_rhythms, episodes
from lab.scenario.fault_windows import faults
from lab.scenario.locator import Errors, toml_error
from lab.scenario.model import Path_, Scenario, ScenarioError, Variant, _is_num
from lab.scenario.tables import BROKER, FLEET, TOP, VARIANT, broker, expectations, fleet, table


@dataclass(frozen=True)
class _VariantSpec:
    """One variant as the file gives it, before it is validated."""

    name: str
    fleet: dict[str, Any]  # [fleet] overrides
    broker: dict[str, Any]  # [broker] overrides
    path: Path_  # where the variant is declared
    expect: Any = None  # its own expect list, if it has one
    expect_path: Path_ = ()


def _variant_specs(err: Errors, top: dict[str, Any], delivery: Any) -> list[_VariantSpec]:
    """Variants: [[variants]], or a list of delivery modes, or the one run the file describes."""
    if "variants" in top:
        if isinstance(delivery, list):
            raise err.at(("fleet", "delivery"), "delivery is a list and [[variants]] are given; "
                                                "name the delivery in each variant instead")
        return _declared_variants(err, top["variants"])
    if isinstance(delivery, list):
        if not delivery or len(set(map(str, delivery))) != len(delivery):
            raise err.at(("fleet", "delivery"), "a delivery list needs distinct modes")
        specs = []
        for i, mode in enumerate(delivery):
            if mode not in DELIVERY_MODES:
                raise err.at(("fleet", "delivery", i), f"delivery must be one of "
                             f"{', '.join(map(repr, DELIVERY_MODES))}, not {mode!r}")
            specs.append(_VariantSpec(mode, {"delivery": mode}, {}, ("fleet", "delivery", i)))
        return specs
    return [_VariantSpec("default", {}, {}, ("fleet",))]


def _declared_variants(err: Errors, raw: Any) -> list[_VariantSpec]:
    if not isinstance(raw, list) or not raw:
        raise err.at(("variants",), "variants must be a non-empty array of tables ([[variants]])")
    specs = []
    for n, entry in enumerate(raw):
        vpath: Path_ = ("variants", n)
        v = table(err, entry, vpath, VARIANT, required=("name",))
        fo = table(err, v.get("fleet", {}), (*vpath, "fleet"), FLEET)
        if "profiles" in fo:
            raise err.at((*vpath, "fleet", "profiles"), "a variant cannot change the profiles")
        bo = table(err, v.get("broker", {}), (*vpath, "broker"), BROKER)
        specs.append(_VariantSpec(v["name"], fo, bo, vpath, v.get("expect"), (*vpath, "expect")))
    return specs


def _expectations(err: Errors, top: dict[str, Any], spec: _VariantSpec,
                  fault_ids: set[str]) -> tuple[Expectation, ...]:
    """The variant's expected verdict: its own expect, or its entry in a top-level expect
    table, or the top-level expect list; each fault window it names must be in the timeline."""
    expect = top.get("expect")
    if spec.expect is not None:
        exps, epath = expectations(err, spec.expect, spec.expect_path), spec.expect_path
    elif isinstance(expect, dict):
        if spec.name not in expect:
            raise err.at(("expect",), f"expect gives no verdict for variant {spec.name!r}")
        exps, epath = expectations(err, expect[spec.name], ("expect", spec.name)), ("expect", spec.name)
    elif expect is None:
        raise err.at(spec.path if "variants" in top else (),
                     f"no expected verdict for variant {spec.name!r}: add expect = [\"lost = 0\", ...]")
    else:
        exps, epath = expectations(err, expect, ("expect",)), ("expect",)
    for i, e in enumerate(exps):
        if e.window_id is not None and e.window_id not in fault_ids:
            raise err.at((*epath, i), f"expectation {e.text!r} names fault window "
                                      f"{e.window_id!r}, which is not in the timeline "
                                      f"({', '.join(sorted(fault_ids)) or 'no faults'})")
    return exps


def _variants(err: Errors, top: dict[str, Any], base: dict[str, Any], broker_base: dict[str, Any],
              fault_ids: set[str]) -> list[Variant]:
    specs = _variant_specs(err, top, base.get("delivery"))
    expect = top.get("expect")
    if isinstance(expect, dict):
        names = [s.name for s in specs]
        for k in expect:
            if k not in names:
                raise err.at(("expect", k), f"expect names variant {k!r}, but the variants are "
                                            f"{', '.join(map(repr, names))}")
    declared = "variants" in top
    fleet_base = {k: v for k, v in base.items() if not (k == "delivery" and isinstance(v, list))}
    variants = []
    for spec in specs:
        exps = _expectations(err, top, spec, fault_ids)
        fleet_spec = fleet(err, fleet_base, spec.fleet, (*spec.path, "fleet") if declared else spec.path)
        broker_spec = broker(err, {**broker_base, **spec.broker}, spec.broker, (*spec.path, "broker"))
        try:
            variants.append(Variant(spec.name, fleet_spec, broker_spec, exps))
        except ScenarioError as exc:
            raise err.relocate(spec.path if declared else (), exc) from None
    return variants


def _load(err: Errors, doc: dict[str, Any], scenario_name: str) -> Scenario:
    top = table(err, doc, (), TOP, required=("description", "duration", "fleet"))
    base = table(err, top["fleet"], ("fleet",), FLEET, required=("devices",))
    broker_base = table(err, top.get("broker", {}), ("broker",), BROKER)
    duration, seed = top["duration"], top.get("seed", 0)
    if not (_is_num(duration) and duration > 0):
        raise err.at(("duration",), f"duration must be more than 0, got {duration!r}")
    if seed < 0:
        raise err.at(("seed",), f"seed must be 0 or more, got {seed}")
    timeline = faults(err, top.get("faults", []), duration, seed)
    variants = _variants(err, top, base, broker_base, {f.id for f in timeline})
    check_rhythms(err, variants[0].fleet.profiles)
    scheduled = episodes(err, top.get("episodes", []), duration, variants[0].fleet.profiles)
    try:
        return Scenario(name=scenario_name, description=top["description"], duration=duration,
                        seed=seed, faults=tuple(timeline), variants=tuple(variants), path=err.file,
                        max_lag=top.get("max_lag"), episodes=tuple(scheduled),
                        attacks=tuple(attacks(err, top.get("attacks", []), duration)))
    except ScenarioError as exc:
        raise err.relocate((), exc) from None


def parse_scenario(text: str, file: str | Path = "<scenario>", name: str | None = None) -> Scenario:
    """Parse scenario TOML text; `file` is used in messages, `name` defaults to its stem."""
    path = Path(file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(exc, text, path) from None
    return _load(Errors(path, text), doc, name or path.stem)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file (see the package docstring)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the scenario: {exc}", file=p) from None
    return parse_scenario(text, p)


def list_scenarios(directory: str | Path) -> list[tuple[str, str]]:
    """(name, description) of every *.toml in `directory`, sorted by name. A file that does not
    load is listed with "invalid: <the error>" as its description, so one bad file does not
    hide the others."""
    out = []
    for p in sorted(Path(directory).glob("*.toml")):
        try:
            out.append((p.stem, load_scenario(p).description))
        except ScenarioError as exc:
            out.append((p.stem, f"invalid: {exc}"))
    return out
