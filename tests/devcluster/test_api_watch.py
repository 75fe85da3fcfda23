"""List + watch: selectors, resume, 410 Gone, bookmarks, dropped streams, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any

import aiohttp
import pytest
from api_testing import Api, api, client_for, pod
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.apiserver import ApiServer

__all__ = ["api"]

#: every namespace holds the kube-root-ca.crt ConfigMap, as in a real cluster
MINE = "metadata.name!=kube-root-ca.crt"


async def collect(stream: watch.Watch, count: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for event in stream:
            events.append((event["type"], event["raw_object"]))
            if len(events) == count:
                break
    return events


def summary(events: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(kind, obj["metadata"].get("name", "")) for kind, obj in events]


async def test_watch_with_label_selector_follows_membership(api: Api) -> None:
    core = api.core
    listed = await core.list_namespaced_pod("default", label_selector="app=lab")
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_pod,
        "default",
        label_selector="app in (lab)",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=10,
    )
    await core.create_namespaced_pod("default", pod("other", labels={"app": "web"}))
    await core.create_namespaced_pod("default", pod("a", labels={"app": "lab"}))
    await core.patch_namespaced_pod("a", "default", {"metadata": {"annotations": {"x": "1"}}})
    await core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"app": "web"}}})
    await core.patch_namespaced_pod("other", "default", {"metadata": {"labels": {"app": "lab"}}})
    await core.delete_namespaced_pod("other", "default")
    events = await collect(stream, 5)
    await w.close()
    assert summary(events) == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
        ("ADDED", "other"),
        ("DELETED", "other"),
    ]
    versions = [int(obj["metadata"]["resourceVersion"]) for _, obj in events]
    assert versions == sorted(versions) and len(set(versions)) == 5


async def test_watch_field_selectors_for_node_and_events(api: Api) -> None:
    core = api.core
    await core.create_namespaced_pod("default", pod("p1"))
    w = watch.Watch()
    stream = w.stream(
        core.list_pod_for_all_namespaces, field_selector="spec.nodeName=gpu-a", timeout_seconds=10
    )
    await core.create_namespaced_pod_binding(
        "p1", "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    events = await collect(stream, 1)
    await w.close()
    assert summary(events) == [("ADDED", "p1")]
    event = {
        "metadata": {"name": "p1.1"},
        "involvedObject": {"kind": "Pod", "name": "p1"},
        "reason": "Scheduled",
        "message": "ok",
        "type": "Normal",
    }
    await core.create_namespaced_event("default", event)
    await core.create_namespaced_event(
        "default", {**event, "metadata": {"name": "n.1"}, "involvedObject": {"kind": "Node"}}
    )
    found = await core.list_namespaced_event("default", field_selector="involvedObject.kind=Pod")
    assert [e.metadata.name for e in found.items] == ["p1.1"]


async def test_watch_without_version_starts_with_current_objects(api: Api) -> None:
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    w = watch.Watch()
    stream = w.stream(
        api.core.list_namespaced_config_map, "default", timeout_seconds=10, field_selector=MINE
    )
    first = await collect(stream, 1)
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    second = await collect(stream, 1)
    await w.close()
    assert summary(first + second) == [("ADDED", "one"), ("ADDED", "two")]


async def test_resume_replays_and_too_old_versions_are_gone(api: Api) -> None:
    core = api.core
    await core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}})
    start = (await core.list_namespaced_config_map("default")).metadata.resource_version
    for i in range(1, 4):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=10
    )
    events = await collect(stream, 3)
    await w.close()
    assert summary(events) == [("ADDED", "c1"), ("ADDED", "c2"), ("ADDED", "c3")]
    api.server.store.history = deque(api.server.store.history, maxlen=2)
    for i in range(4, 8):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    w = watch.Watch()
    with pytest.raises(ApiException) as gone:
        await collect(
            w.stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=start,
                timeout_seconds=10,
            ),
            1,
        )
    await w.close()
    assert gone.value.status == 410 and "too old resource version" in gone.value.reason


async def test_bookmarks_carry_the_latest_version(api: Api) -> None:
    w = watch.Watch()
    stream = w.stream(
        api.core.list_namespaced_pod,
        "default",
        allow_watch_bookmarks=True,
        resource_version=str(api.server.store.rv),
        timeout_seconds=10,
    )
    await api.core.create_namespace({"metadata": {"name": "elsewhere"}})
    events = await collect(stream, 1)
    await w.close()
    kind, obj = events[0]
    assert kind == "BOOKMARK" and obj["kind"] == "Pod"
    assert obj["metadata"]["resourceVersion"] == str(api.server.store.rv)


async def test_dropped_watches_resume_without_losing_events(api: Api) -> None:
    w = watch.Watch()
    # resumes forever
    stream = w.stream(api.core.list_namespaced_config_map, "default", field_selector=MINE)
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    first = await collect(stream, 1)
    assert api.server.drop_watches() == 1
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    second = await collect(stream, 1)
    await w.close()
    assert summary(first + second) == [("ADDED", "before"), ("ADDED", "after")]


async def test_restart_keeps_objects_and_versions(api: Api) -> None:
    created = await api.core.create_namespaced_pod("default", pod("keep"))
    url = api.server.url
    await api.server.restart()
    assert api.server.url == url
    read = await api.core.read_namespaced_pod("keep", "default")
    assert read.metadata.uid == created.metadata.uid
    later = await api.core.create_namespaced_pod("default", pod("later"))
    assert int(later.metadata.resource_version) > int(created.metadata.resource_version)


async def test_state_is_loaded_by_a_new_server(api: Api) -> None:
    created = await api.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "kept"}, "data": {"k": "v"}}
    )
    state_dir = api.server.state_dir
    await api.server.stop()
    assert (state_dir / "objects" / "snapshot.json").exists()
    fresh = ApiServer(state_dir)
    await fresh.start()
    try:
        client = await client_for(fresh.write_kubeconfig(state_dir / "kc2"))
        async with client:
            core = CoreV1Api(client)
            read = await core.read_namespaced_config_map("kept", "default")
            assert read.data == {"k": "v"} and read.metadata.uid == created.metadata.uid
            newer = await core.create_namespaced_config_map("default", {"metadata": {"name": "n"}})
            assert int(newer.metadata.resource_version) > int(created.metadata.resource_version)
    finally:
        await fresh.stop()


async def test_watch_list_protocol_marks_the_end_of_initial_events(api: Api) -> None:
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    query = (
        "watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
        "&fieldSelector=metadata.name%21%3Dkube-root-ca.crt"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.server.url}/api/v1/namespaces/default/configmaps?{query}") as resp,
    ):
        first = json.loads(await resp.content.readline())
        second = json.loads(await resp.content.readline())
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "one"
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert second["object"]["metadata"]["resourceVersion"] == str(api.server.store.rv)


async def test_snapshots_are_written_periodically(api: Api) -> None:
    api.server.snapshot_interval = 0.0
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "saved"}})
    path = api.server.state_dir / "objects" / "snapshot.json"
    async with asyncio.timeout(5):
        while not path.exists() or '"saved"' not in path.read_text():
            await asyncio.sleep(0.05)
    data = json.loads(path.read_text())
    assert data["resourceVersion"] >= 1 and "configmaps" in data["objects"]


async def test_watchers_resume_across_a_restart_without_gaps(api: Api) -> None:
    seen: list[str] = []
    version = (await api.core.list_namespaced_config_map("default")).metadata.resource_version

    async def follow() -> None:
        nonlocal version
        while True:
            try:
                resp = await api.core.list_namespaced_config_map(
                    "default", watch=True, resource_version=version, _preload_content=False
                )
                async with resp:
                    async for line in resp.content:
                        event = json.loads(line)
                        version = event["object"]["metadata"]["resourceVersion"]
                        seen.append(event["object"]["metadata"]["name"])
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.05)

    task = asyncio.create_task(follow())
    try:
        await api.core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        async with asyncio.timeout(5):
            while seen != ["a"]:
                await asyncio.sleep(0.02)
        await api.server.restart()
        for name in ("b", "c"):
            await api.core.create_namespaced_config_map("default", {"metadata": {"name": name}})
        async with asyncio.timeout(5):
            while len(seen) < 3:
                await asyncio.sleep(0.02)
        assert seen == ["a", "b", "c"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
