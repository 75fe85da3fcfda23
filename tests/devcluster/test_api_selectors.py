"""Label and field selectors, label keys and resource quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub_ext.devcluster.apiserver.metadata import key_problem, quantity
from hub_ext.devcluster.apiserver.selectors import Selector, SelectorError

POD = {
    "metadata": {
        "name": "jupyter-ada",
        "namespace": "lab",
        "labels": {"app": "jupyterhub", "tier": "user"},
    },
    "spec": {"nodeName": "gpu-a"},
    "status": {"phase": "Running"},
}
EVENT = {
    "metadata": {"name": "e", "namespace": "lab"},
    "involvedObject": {"kind": "Pod", "name": "jupyter-ada"},
}


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("app=jupyterhub", True),
        ("app==jupyterhub", True),
        ("app!=jupyterhub", False),
        ("app in (jupyterhub, other)", True),
        ("app notin (jupyterhub)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing,app=jupyterhub", True),
        ("missing notin (x)", True),
        ("app in (a,b),tier=user", False),
        ("", True),
    ],
)
def test_label_selectors(label: str, expected: bool) -> None:
    assert Selector.parse(None, label, None)(POD) is expected


@pytest.mark.parametrize(
    ("field", "obj", "expected"),
    [
        ("metadata.name=jupyter-ada", POD, True),
        ("metadata.namespace!=lab", POD, False),
        ("spec.nodeName=gpu-a,status.phase=Running", POD, True),
        ("spec.nodeName=", POD, False),
        ("status.phase!=Pending", POD, True),
        ("involvedObject.kind=Pod,involvedObject.name=jupyter-ada", EVENT, True),
        ("involvedObject.name=other", EVENT, False),
    ],
)
def test_field_selectors(field: str, obj: dict, expected: bool) -> None:
    assert Selector.parse(None, None, field)(obj) is expected


def test_namespace_and_bad_selectors() -> None:
    assert Selector.parse("lab", None, None)(POD)
    assert not Selector.parse("other", None, None)(POD)
    assert Selector.parse("lab", None, "metadata.name=x").exact_name == "x"
    for text in ("app in (a", "!app in (a)", "a b c"):
        with pytest.raises(SelectorError):
            Selector.parse(None, text, None)
    with pytest.raises(SelectorError):
        Selector.parse(None, None, "status.phase")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("16Gi", Decimal(16 * 2**30)),
        ("10G", Decimal(10 * 10**9)),
        ("1e3", Decimal(1000)),
        (2, Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("12x", None),
        ("", None),
        (True, None),
    ],
)
def test_quantities(text: object, expected: Decimal | None) -> None:
    assert quantity(text) == expected


def test_label_keys() -> None:
    assert key_problem("hub.jupyter.org/username") is None
    assert key_problem("app") is None
    assert key_problem("UPPER.case/x") is not None
    assert key_problem("x" * 64) is not None
    assert key_problem("a/") is not None
