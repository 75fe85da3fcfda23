"""A very small stand-in for a student's server in the many-student tests.

Binds the address of ``JUPYTERHUB_SERVICE_URL`` (the pod IP on the emulated cluster) and answers
every request with ``200 ok``, which is all the hub needs to route to it. It costs a few
megabytes and milliseconds instead of a full jupyterhub-singleuser start-up; the tests use the
real single-user server wherever they look inside a server.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"started": "light"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8888/"))
    server = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 8888), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
