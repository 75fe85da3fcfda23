"""The admin overview from literal Node objects and profiles; the page escapes LDAP names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader

from hub_ext.adapters.k8s.overview import build_lab_overview, gpu_groups, sessions_today, to_json
from hub_ext.core.admission.model import CourseSlug, Priority, UserName, WaitReason
from hub_ext.core.admission.overview import (
    AdmissionOverview,
    CourseQueue,
    NodeSlices,
    QueuedServer,
    SliceHolder,
    ZoneSlices,
)
from hub_ext.core.capacity.model import SliceType
from hub_ext.core.profiles.build import parse_profile
from hub_ext.hub.admin_view import TEMPLATES

ROOT = Path(__file__).resolve().parents[3]
# Tuesday 2026-11-24, 09:30 UTC: ml-101's group A meets 10:00-11:30 Europe/Berlin (09:00 UTC).
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def mig_node(name: str, zone: str, gpus: int = 2, ready: bool = True) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "topology.kubernetes.io/zone": zone,
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/mig.strategy": "mixed",
                "nvidia.com/mig.config": "all-1g.10gb",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "nvidia.com/mig-1g.10gb": str(4 * gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def cpu_node(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "room-a"}},
        "status": {
            "allocatable": {"cpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_gpu_groups_summarise_the_mig_plan() -> None:
    nodes = [
        mig_node("gpu-a1", "room-a"),
        mig_node("gpu-a2", "room-a", ready=False),
        mig_node("gpu-b1", "room-b", gpus=3),
        cpu_node("cpu-1"),
    ]
    groups = gpu_groups(nodes)
    assert [(g.zone, g.model, g.mig_config) for g in groups] == [
        ("room-a", "A100-SXM4-40GB", "all-1g.10gb"),
        ("room-b", "A100-SXM4-40GB", "all-1g.10gb"),
    ]
    room_a, room_b = groups
    assert room_a.nodes == ("gpu-a1", "gpu-a2") and room_a.ready == 1
    assert room_a.devices == 4 and room_a.slices == (("1g.10gb", 16),)
    assert room_b.devices == 3 and room_b.slices == (("1g.10gb", 12),)
    assert room_a.strategy == "mixed"


def test_single_strategy_product_is_named_by_its_model() -> None:
    node = mig_node("gpu-s", "room-a")
    labels = node["metadata"]["labels"]  # type: ignore[index]
    labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-40GB-MIG-1g.10gb"
    labels["nvidia.com/mig.strategy"] = "single"
    node["status"]["allocatable"] = {"nvidia.com/gpu": "8"}  # type: ignore[index]
    (group,) = gpu_groups([node])
    assert group.model == "A100-SXM4-40GB"
    assert group.slices == (("1g.10gb", 8),)


def ml101() -> object:
    text = (ROOT / "profiles" / "ml-101" / "profile.yaml").read_text()
    profile, errors = parse_profile(text, "profiles/ml-101/profile.yaml")
    assert profile is not None, errors
    return profile


def test_sessions_today_come_from_the_profiles() -> None:
    profile = ml101()
    today = sessions_today([profile], NOW)  # type: ignore[list-item]
    assert [(s.course, s.group, s.seats) for s in today] == [("ml-101", "ml101-a", 25)]
    (session,) = today
    assert session.start == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert session.end == datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
    assert session.active
    wednesday = sessions_today([profile], NOW + timedelta(days=1))  # type: ignore[list-item]
    assert wednesday == ()
    later = sessions_today([profile], NOW + timedelta(hours=2))  # type: ignore[list-item]
    assert not later[0].active


def admission(user: str) -> AdmissionOverview:
    holder = SliceHolder(
        user=UserName(user),
        server_name="",
        course=CourseSlug("ml-101"),
        group="ml101-a",
        pod="jupyter-x",
        slice_type=SliceType("1g.10gb"),
        node="gpu-a1",
        since=NOW - timedelta(minutes=5),
    )
    waiting = QueuedServer(
        user=UserName(user + "-waits"),
        server_name="",
        course=CourseSlug("ml-101"),
        group="ml101-a",
        slice_type=SliceType("1g.10gb"),
        position=1,
        waiting=1,
        priority=Priority.LAB_SESSION,
        reason=WaitReason.NO_FREE_SLICE,
        eta=timedelta(minutes=3),
        enqueued_at=NOW - timedelta(minutes=1),
    )
    return AdmissionOverview(
        now=NOW,
        nodes=(NodeSlices("gpu-a1", "room-a", SliceType("1g.10gb"), 8, 1, 7, (holder,)),),
        zones=(ZoneSlices(SliceType("1g.10gb"), "room-a", 8, 1, 7),),
        in_flight=(),
        queues=(CourseQueue(CourseSlug("ml-101"), (waiting,)),),
        reservations=(),
    )


def test_json_document_is_plain_json() -> None:
    overview = build_lab_overview(NOW, admission("student01"), [mig_node("gpu-a1", "room-a")], [])
    data = json.loads(json.dumps(to_json(overview)))
    holder = data["admission"]["nodes"][0]["holders"][0]
    assert holder["user"] == "student01" and holder["node"] == "gpu-a1"
    entry = data["admission"]["queues"][0]["entries"][0]
    assert entry["reason"] == "no-free-slice" and entry["eta"] == 180.0
    assert entry["priority"] == int(Priority.LAB_SESSION)
    assert data["gpus"][0]["slices"] == [["1g.10gb", 8]]
    assert data["now"] == NOW.isoformat()


def render(overview: object) -> str:
    env = Environment(
        autoescape=True,
        loader=ChoiceLoader(
            [
                FileSystemLoader(str(TEMPLATES)),
                DictLoader({"page.html": "<html>{% block main %}{% endblock main %}</html>"}),
            ]
        ),
    )
    template = env.get_template("labhub-admin.html")
    return template.render(overview=overview, generated="now", base_url="/hub/")


def test_page_escapes_names_from_ldap() -> None:
    evil = "<script>alert(1)</script>"
    overview = build_lab_overview(NOW, admission(evil), [mig_node("gpu-a1", "room-a")], [ml101()])  # type: ignore[list-item]
    html = render(overview)
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;-waits" in html  # the queue table
    assert "A100-SXM4-40GB" in html and "8x 1g.10gb" in html
    assert "ml101-a" in html and "running" in html  # today's session, in progress
    rooms = html[html.index('id="rooms"') : html.index("</table>", html.index('id="rooms"'))]
    assert "<td>room-a</td><td>1g.10gb</td><td>8</td><td>1</td>" in rooms
    assert "<td>12 %</td>" in rooms  # 1 of 8 slices in use


def test_page_without_admission_says_so() -> None:
    html = render(build_lab_overview(NOW, None, [], []))
    assert 'id="no-controller"' in html
    assert "No lab session today." in html
