"""Pods and home volumes are created from the manifest dicts, with KubeSpawner's rules for
existing objects and retries of transient API errors."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from tornado import web

from hub_ext.hub.spawner.k8s import (
    TRANSIENT_STATUS,
    Transient,
    create_pod,
    create_pvc,
    with_retries,
)

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-anna"}, "spec": {}}
PVC = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim-anna"}}


class Response:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = json.dumps(body).encode()
        self.released = False

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        self.released = True


class Api:
    """Answers each call with the next (status, body) of its script; records the calls."""

    def __init__(self, **script: list[tuple[int, Any]]) -> None:
        self.script = script
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Response:
            self.calls.append((name, args, kwargs))
            answer = self.script[name].pop(0)
            if answer == "hang":
                await asyncio.sleep(10)
            return Response(*answer)

        return call


class Spawner:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.namespace = "lab"
        self.log = logging.getLogger("test-spawner-k8s")
        self.stopped: list[bool] = []

    async def stop(self, now: bool = False) -> None:
        self.stopped.append(now)


async def test_the_pod_is_sent_as_it_was_built() -> None:
    api = Api(create_namespaced_pod=[(201, {**POD, "status": {}})])
    assert await create_pod(Spawner(api), POD, 3) is True
    method, args, kwargs = api.calls[0]
    assert method == "create_namespaced_pod"
    assert args == ("lab", POD) and kwargs == {"_preload_content": False}


async def test_a_pod_of_the_same_name_is_stopped_and_the_create_retried() -> None:
    api = Api(create_namespaced_pod=[(409, {"reason": "AlreadyExists"})])
    spawner = Spawner(api)
    assert await create_pod(spawner, POD, 3) is False
    assert spawner.stopped == [True]


async def test_a_slow_api_server_is_transient_and_other_errors_propagate() -> None:
    api = Api(create_namespaced_pod=["hang", (503, {"message": "etcd leader changed"})])
    with pytest.raises(Transient, match=r"no answer within 0\.05 s"):
        await create_pod(Spawner(api), POD, 0.05)
    with pytest.raises(Transient, match=r"HTTP 503.*etcd leader changed"):
        await create_pod(Spawner(api), POD, 3)
    api = Api(create_namespaced_pod=[(422, {"reason": "Invalid"})])
    with pytest.raises(ApiException) as err:
        await create_pod(Spawner(api), POD, 3)
    assert err.value.status == 422


@pytest.mark.parametrize("status", sorted(TRANSIENT_STATUS))
async def test_transient_answers_are_retried_until_the_create_succeeds(status: int) -> None:
    api = Api(create_namespaced_pod=[(status, {}), (status, {}), (201, POD)])
    spawner = Spawner(api)
    await with_retries(spawner, "the pod", lambda: create_pod(spawner, POD, 3), 30)
    assert [c[0] for c in api.calls] == ["create_namespaced_pod"] * 3


async def test_retries_end_with_one_message_for_the_student() -> None:
    api = Api(create_namespaced_pod=[(500, {"message": "boom"})] * 10)
    spawner = Spawner(api)
    with pytest.raises(web.HTTPError) as err:
        await with_retries(spawner, "your server's pod", lambda: create_pod(spawner, POD, 3), 1)
    assert err.value.status_code == 503
    message = err.value.log_message
    assert "did not accept your server's pod for 1 seconds" in message
    assert "HTTP 500" in message and "boom" in message and "press Start again" in message
    assert 2 <= len(api.calls) <= 3  # 0 s, 0.5 s (and 1.5 s would pass the deadline)


async def test_a_refusal_is_not_retried_and_names_the_answer() -> None:
    api = Api(create_namespaced_pod=[(422, {"message": "spec.containers: Required value"})])
    spawner = Spawner(api)
    with pytest.raises(web.HTTPError) as err:
        await with_retries(spawner, "your server's pod", lambda: create_pod(spawner, POD, 3), 30)
    assert err.value.status_code == 500
    assert "HTTP 422" in err.value.log_message and "Required value" in err.value.log_message
    assert len(api.calls) == 1


async def test_an_existing_home_volume_is_fine_even_behind_a_quota() -> None:
    api = Api(
        create_namespaced_persistent_volume_claim=[(201, PVC), (409, {}), (403, {}), (403, {})],
        read_namespaced_persistent_volume_claim=[(200, PVC), (404, {})],
    )
    spawner = Spawner(api)
    assert await create_pvc(spawner, PVC, 3) is True
    assert api.calls[0][2] == {"namespace": "lab", "body": PVC, "_preload_content": False}
    assert await create_pvc(spawner, PVC, 3) is True  # 409: exists
    assert await create_pvc(spawner, PVC, 3) is True  # 403, but it exists
    with pytest.raises(ApiException) as err:  # 403 and it does not exist: the quota error
        await create_pvc(spawner, PVC, 3)
    assert err.value.status == 403
