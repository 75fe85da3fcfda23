"""The KubeSpawner internals that LabKubeSpawner relies on still exist and work as used.

LabKubeSpawner overrides no private KubeSpawner method. Where KubeSpawner has no public way
(hub_ext/hub/spawner/seams.py), these checks fail when a KubeSpawner release changes it.
"""

from __future__ import annotations

import inspect

import pytest
from kubespawner import KubeSpawner

from hub_ext.hub.spawner.seams import USED
from hub_ext.hub.spawner.spawner import LabKubeSpawner


@pytest.mark.parametrize(("name", "kind"), USED, ids=[u[0] for u in USED])
def test_the_internal_exists(name: str, kind: str) -> None:
    if kind == "attribute":
        source = inspect.getsource(KubeSpawner)
        assert f"self.{name} = " in source or f"{name} = " in source
        return
    member = getattr(KubeSpawner, name)
    if kind == "coroutine":
        assert inspect.iscoroutinefunction(member)
    else:
        assert callable(member) and not inspect.iscoroutinefunction(member)


def test_progress_ends_with_the_start_future() -> None:
    # KubeSpawner.start keeps the start in _start_future and progress() stops when it is done
    assert "self._start_future = " in inspect.getsource(KubeSpawner.start)
    assert "_start_future" in inspect.getsource(KubeSpawner.progress)


def test_the_watchers_and_the_url_take_what_labhub_passes() -> None:
    assert list(inspect.signature(KubeSpawner._start_watching_pods).parameters) == [
        "self",
        "replace",
    ]
    assert list(inspect.signature(KubeSpawner._get_pod_url).parameters) == ["self", "pod"]


def test_no_private_kubespawner_method_is_overridden() -> None:
    overridden = [
        name
        for name, member in vars(KubeSpawner).items()
        if name.startswith("_")
        and not name.startswith("__")
        and callable(member)
        and getattr(LabKubeSpawner, name) is not member
    ]
    # trait defaults (@default) generate _name_default methods, which are public API of traitlets
    assert [n for n in overridden if not n.endswith("_default")] == []


def test_the_hooks_labhub_runs_are_kubespawners() -> None:
    for hook in ("modify_pod_hook", "after_pod_created_hook"):
        assert hook in KubeSpawner.class_traits()
        assert f"self.{hook}(self, pod)" in inspect.getsource(KubeSpawner._start)
