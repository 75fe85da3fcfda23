"""Profile reload metrics: the hub's profile loader sets the loaded gauge and counts failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hub_ext.hub.spawner import admission as spawner_admission

ROOT = Path(__file__).resolve().parents[2]


def errors() -> float:
    value = REGISTRY.get_sample_value(
        "labhub_profile_reload_errors_total", {"source": "profiles_dir"}
    )
    return value or 0.0


def loaded() -> float:
    return REGISTRY.get_sample_value("labhub_profiles_loaded") or 0.0


def test_reload_errors_are_counted_and_the_last_good_set_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spawner_admission, "PROFILE_RELOAD_SECONDS", -1.0)
    folder = tmp_path / "profiles"
    folder.mkdir()
    for course in ("ml-101", "cv-201"):
        shutil.copytree(ROOT / "profiles" / course, folder / course)
    try:
        before = errors()
        profiles = spawner_admission.profiles_from_dir(str(folder))
        assert {p.slug for p in profiles} == {"ml-101", "cv-201"}
        assert loaded() == 2
        assert errors() == before
        broken = folder / "cv-201" / "profile.yaml"
        broken.write_text("slug: cv-201\nimage: [not, an, image\n")
        os.utime(broken, (1, 1))
        profiles = spawner_admission.profiles_from_dir(str(folder))
        assert errors() == before + 1
        assert {p.slug for p in profiles} == {"ml-101", "cv-201"}  # last good cv-201 kept
        assert loaded() == 2
    finally:
        spawner_admission._SOURCES.pop(str(folder), None)
