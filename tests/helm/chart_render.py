"""Rendering the LabHub chart with the real helm binary, for the chart's tests."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "labhub"
CI_DIR = CHART / "ci"
PREVIOUS_DIR = CI_DIR / "previous"
RELEASE = "gpulab"
NAMESPACE = "labhub"
CI_VALUES = sorted(p.name for p in CI_DIR.glob("*-values.yaml"))
PREVIOUS_VALUES = sorted(p.name for p in PREVIOUS_DIR.glob("*.yaml"))


def helm_binary() -> str:
    """The helm 4 binary: $LABHUB_HELM, .tools/bin/helm, or helm on PATH."""
    candidates = [os.environ.get("LABHUB_HELM"), str(ROOT / ".tools" / "bin" / "helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("helm")
    if found is None:
        raise RuntimeError(
            "helm not found: run .ci/install-helm (installs .tools/bin/helm) or set LABHUB_HELM"
        )
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _values_args(files: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for file in files:
        args += ["-f", str(file)]
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def _render_text(files: tuple[Path, ...], sets: tuple[str, ...]) -> str:
    result = run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_values_args(files, sets)
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def render(*files: str | Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rendered manifests for values files (names are looked up in helm/labhub/ci/)."""
    paths = tuple(Path(f) if Path(f).is_absolute() else CI_DIR / f for f in files)
    docs = yaml.safe_load_all(_render_text(paths, sets))
    return [d for d in docs if d]


def render_error(*files: str | Path, sets: tuple[str, ...] = ()) -> str:
    """stderr of a helm template run that must fail."""
    paths = tuple(Path(f) if Path(f).is_absolute() else CI_DIR / f for f in files)
    result = run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_values_args(paths, sets)
    )
    assert result.returncode != 0, "helm template succeeded but was expected to fail"
    return result.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner "Kind/name", pod spec) of every workload in the manifests."""
    for doc in docs:
        kind = doc["kind"]
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            yield f"{kind}/{doc['metadata']['name']}", spec
        elif kind == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]
