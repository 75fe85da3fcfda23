"""The client address of a real tornado request (the server JupyterHub runs, with xheaders)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from tornado import httpserver, web

from hub_ext.core.login.forwarding import TrustedProxies
from hub_ext.hub.auth.gate import ProxyTrust, request_address


class Echo(web.RequestHandler):
    trusted = TrustedProxies.parse(["127.0.0.1/32"])

    def get(self) -> None:
        self.write(
            {"client": request_address(self, self.trusted), "tornado": self.request.remote_ip}
        )


@pytest_asyncio.fixture
async def server() -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    # As JupyterHub starts its server: xheaders=True (tornado then believes X-Real-Ip).
    http = httpserver.HTTPServer(web.Application([("/", Echo)]), xheaders=True)
    http.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        http.stop()


async def get(url: str, source: str, headers: dict[str, str]) -> dict[str, str]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as s, s.get(url, headers=headers) as r:
        return await r.json()


async def test_tornado_believes_x_real_ip_labhub_does_not(server: str) -> None:
    # From the trusted proxy (127.0.0.1): the entry it appended is the client.
    got = await get(
        server, "127.0.0.1", {"X-Real-Ip": "203.0.113.9", "X-Forwarded-For": "1.2.3.4, 192.0.2.5"}
    )
    assert got == {"client": "192.0.2.5", "tornado": "203.0.113.9"}
    # From anyone else: the peer, whatever the headers say.
    got = await get(
        server, "127.0.0.2", {"X-Real-Ip": "203.0.113.9", "X-Forwarded-For": "192.0.2.5"}
    )
    assert got["client"] == "127.0.0.2"


async def test_host_names_are_resolved() -> None:
    trust = ProxyTrust(["localhost", "10.0.0.0/8"])
    assert trust.names == ("localhost",)
    trusted = await trust.refresh()
    assert trusted.trusts(ipaddress.ip_address("127.0.0.1"))
    assert trusted.trusts(ipaddress.ip_address("10.1.2.3"))


async def test_unresolvable_name_is_a_warning_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trust = ProxyTrust(["no-such-proxy.invalid"])
    trusted = await trust.refresh()
    assert trusted.networks == ()
    assert "does not resolve" in caplog.text


def test_a_bad_network_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/40' is not an IP address or network"):
        ProxyTrust(["10.0.0.0/40"])
