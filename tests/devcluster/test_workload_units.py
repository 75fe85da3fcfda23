"""Pure parts of the workload controllers and service networking: schedules, names, env."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub_ext.devcluster.controllers.cron import CronError, due_times, parse_schedule
from hub_ext.devcluster.controllers.deployments import normalized, template_hash
from hub_ext.devcluster.controllers.labels import scaled, selector_matches
from hub_ext.devcluster.network.services import hosts_file, service_env


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("schedule", "zone", "since", "until", "expected"),
    [
        (
            "*/15 * * * *",
            None,
            "2026-01-05T10:01",
            "2026-01-05T11:00",
            ["10:15", "10:30", "10:45", "11:00"],
        ),
        ("@hourly", None, "2026-01-05T10:00", "2026-01-05T12:30", ["11:00", "12:00"]),
        (
            "30 9 * * mon-fri",
            None,
            "2026-01-09T00:00",
            "2026-01-13T00:00",  # Fri..Mon
            ["2026-01-09 09:30", "2026-01-12 09:30"],
        ),
        ("0 8 * * *", "Europe/Berlin", "2026-01-05T00:00", "2026-01-06T00:00", ["07:00"]),
        ("0 8 * * *", "Europe/Berlin", "2026-07-05T00:00", "2026-07-06T00:00", ["06:00"]),
        (
            "0 0 3 * 0",
            None,
            "2026-01-31T23:00",
            "2026-02-04T00:00",  # day OR weekday
            ["2026-02-01 00:00", "2026-02-03 00:00"],
        ),
    ],
    ids=["step", "macro", "weekdays", "berlin-winter", "berlin-summer", "dom-or-dow"],
)
def test_schedules_fire_at_their_times(
    schedule: str, zone: str | None, since: str, until: str, expected: list[str]
) -> None:
    times = due_times(parse_schedule(schedule), zone, stamp(since), stamp(until))
    shown = [
        datetime.fromtimestamp(t, UTC).strftime(
            "%H:%M" if ":" in expected[0][:3] else "%Y-%m-%d %H:%M"
        )
        for t in times
    ]
    assert shown == expected


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * *", "expected exactly 5 fields, found 4: * * * *"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("x * * * *", "failed to parse int from x"),
        ("CRON_TZ=UTC 0 * * * *", "use spec.timeZone"),
    ],
)
def test_bad_schedules_say_why(schedule: str, message: str) -> None:
    with pytest.raises(
        CronError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")
    ):
        parse_schedule(schedule)


def test_only_the_latest_hundred_missed_times_are_kept() -> None:
    times = due_times(parse_schedule("* * * * *"), None, 0, 86400)
    assert len(times) == 101 and times[-1] == 86400


def test_templates_that_differ_only_in_empty_fields_are_the_same() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    round_tripped = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web", "pod-template-hash": "x"}},
        "spec": {"containers": [{"name": "a", "resources": {}}]},
    }
    assert normalized(template) == normalized(round_tripped)
    assert template_hash(normalized(template)) == template_hash(normalized(round_tripped))
    changed = {**template, "spec": {"containers": [{"name": "b"}]}}
    assert template_hash(normalized(changed)) != template_hash(normalized(template))
    assert set(template_hash(template)) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [(2, 10, True, 2), ("25%", 10, True, 3), ("25%", 10, False, 2), ("100%", 3, False, 3)],
)
def test_int_or_percent(value: object, total: int, up: bool, expected: int) -> None:
    assert scaled(value, total, up) == expected


def test_label_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "db"}}, labels)
    exprs = [
        {"key": "tier", "operator": "In", "values": ["front", "back"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ]
    assert selector_matches({"matchExpressions": exprs}, labels)
    assert not selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )


def svc(name: str, ns: str, ip: str, *ports: tuple[str, int]) -> dict:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterIP": ip,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
        },
    }


def test_service_environment_variables_are_the_kubelets() -> None:
    env = service_env(
        [
            svc("proxy-api", "lab", "127.250.0.7", ("http", 8001)),
            svc("hub", "lab", "127.250.0.5", ("", 8081), ("metrics", 9090)),
            svc("headless", "lab", "None", ("", 80)),
        ]
    )
    assert env["PROXY_API_SERVICE_HOST"] == "127.250.0.7"
    assert env["PROXY_API_SERVICE_PORT"] == "8001"
    assert env["PROXY_API_SERVICE_PORT_HTTP"] == "8001"
    assert env["PROXY_API_PORT"] == "tcp://127.250.0.7:8001"
    assert env["HUB_PORT_9090_TCP_ADDR"] == "127.250.0.5"
    assert env["HUB_PORT_8081_TCP_PROTO"] == "tcp"
    assert env["HUB_SERVICE_PORT_METRICS"] == "9090"
    assert not any(k.startswith("HEADLESS") for k in env)


def test_hosts_file_names_services_as_cluster_dns_would() -> None:
    pod = {
        "metadata": {"name": "jupyter-ada", "namespace": "lab"},
        "spec": {},
        "status": {"podIP": "127.10.0.9"},
    }
    text = hosts_file(
        [svc("hub", "lab", "127.250.0.5", ("", 8081)), svc("ldap", "infra", "127.250.0.9")], pod
    )
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "127.10.0.9\tjupyter-ada" in lines
    assert "127.250.0.5\thub.lab.svc.cluster.local hub.lab.svc hub.lab hub" in lines
    assert "127.250.0.9\tldap.infra.svc.cluster.local ldap.infra.svc ldap.infra" in lines
