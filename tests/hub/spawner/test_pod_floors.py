"""The security floor: what it fills in, and every setting that would loosen it is named."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from hub_ext.core.pod_floors import FloorError, apply_floor, floor_violations, setting_violations
from hub_ext.hub.spawner.spawner import FLOOR_TRAITS, LabKubeSpawner, check_security_floor

LOOSENING: list[tuple[str, Any, str]] = [
    ("privileged", True, "privileged = True"),
    ("allow_privilege_escalation", True, "allow_privilege_escalation = True"),
    ("uid", 0, "uid = 0"),
    ("automount_service_account_token", True, "automount_service_account_token = True"),
    ("container_security_context", {"runAsNonRoot": False}, "runAsNonRoot: false"),
    ("container_security_context", {"runAsUser": 0}, "runAsUser: 0"),
    ("container_security_context", {"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
    ("container_security_context", {"privileged": True}, "privileged: true"),
    ("container_security_context", {"capabilities": {"add": ["SYS_ADMIN"]}}, "SYS_ADMIN"),
    ("container_security_context", {"seccompProfile": {"type": "Unconfined"}}, "Unconfined"),
    ("pod_security_context", {"runAsNonRoot": False}, "pod_security_context sets runAsNonRoot"),
    ("pod_security_context", {"runAsUser": 0}, "pod_security_context sets runAsUser: 0"),
    ("pod_security_context", {"seccompProfile": {"type": "Unconfined"}}, "Unconfined"),
    ("extra_pod_config", {"automountServiceAccountToken": True}, "automountServiceAccountToken"),
    ("extra_pod_config", {"hostNetwork": True}, "extra_pod_config sets hostNetwork"),
    ("extra_pod_config", {"host_pid": True}, "extra_pod_config sets hostPID"),
    ("extra_pod_config", {"securityContext": {"runAsUser": 0}}, "extra_pod_config.security"),
    (
        "extra_container_config",
        {"securityContext": {"privileged": True}},
        "extra_container_config.securityContext sets privileged",
    ),
    (
        "init_containers",
        [{"name": "setup", "securityContext": {"runAsUser": 0}}],
        "init_containers[setup].securityContext sets runAsUser: 0",
    ),
    (
        "extra_containers",
        {"debug": {"name": "debug", "security_context": {"capabilities": {"add": ["NET_ADMIN"]}}}},
        "extra_containers[debug].securityContext adds capabilities ['NET_ADMIN']",
    ),
]


@pytest.mark.parametrize(("trait", "value", "named"), LOOSENING, ids=[r[2] for r in LOOSENING])
def test_a_loosening_setting_is_named(trait: str, value: Any, named: str) -> None:
    assert trait in FLOOR_TRAITS
    problems = setting_violations({trait: value})
    assert len(problems) == 1 and named in problems[0], problems
    assert problems[0].startswith(trait)


@pytest.mark.parametrize(
    "settings",
    [
        {"uid": 1500, "allow_privilege_escalation": False, "privileged": False},
        {"automount_service_account_token": False, "allow_privilege_escalation": None},
        {"container_security_context": {"readOnlyRootFilesystem": True, "runAsUser": 1000}},
        {"container_security_context": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}},
        {"pod_security_context": {"seccompProfile": {"type": "Localhost"}, "fsGroup": 100}},
        {"extra_pod_config": {"hostNetwork": False, "priorityClassName": "x"}},
        {"init_containers": [{"name": "ok", "securityContext": {"runAsUser": 1000}}]},
    ],
)
def test_settings_within_the_floor_pass(settings: dict[str, Any]) -> None:
    assert setting_violations(settings) == []


def test_the_hub_refuses_a_loosening_config_naming_each_setting() -> None:
    c = Config()
    c.KubeSpawner.privileged = True
    c.LabKubeSpawner.extra_pod_config = {"hostPID": True}
    with pytest.raises(FloorError) as err:
        check_security_floor(c)
    text = str(err.value)
    assert "c.LabKubeSpawner.privileged = True" in text
    assert "c.LabKubeSpawner.extra_pod_config sets hostPID" in text
    assert "Remove these settings" in text
    with pytest.raises(FloorError, match="uid = 0"):
        LabKubeSpawner(config=Config({"LabKubeSpawner": {"uid": 0}}))


def test_callables_are_checked_on_the_pod_not_at_start() -> None:
    assert setting_violations({"uid": lambda spawner: 0}) == []


def test_the_floor_fills_in_what_a_pod_leaves_out() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "notebook", "securityContext": {"capabilities": {"drop": []}}}],
            "initContainers": [{"name": "setup"}],
        }
    }
    floored = apply_floor(pod)
    assert floor_violations(pod) != []
    assert floor_violations(floored) == []
    assert floored["spec"]["automountServiceAccountToken"] is False
    assert floored["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in floored["spec"]["containers"] + floored["spec"]["initContainers"]:
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_floor_never_overwrites_an_explicit_loosening() -> None:
    pod = {
        "spec": {
            "automountServiceAccountToken": True,
            "hostIPC": True,
            "containers": [{"name": "notebook", "securityContext": {"privileged": True}}],
        }
    }
    problems = floor_violations(apply_floor(pod))
    assert "the pod would mount a ServiceAccount token" in problems
    assert "the pod sets hostIPC" in problems
    assert "container 'notebook' sets privileged: true; servers may not be privileged" in problems
