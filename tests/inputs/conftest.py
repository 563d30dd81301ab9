"""A real HTTP server (http.server in a thread) serving a temporary directory, with optional basic auth."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import pytest


@dataclass
class HttpServer:
    root: Path
    base_url: str
    credentials: Optional[tuple[str, str]] = None
    requests: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with 503 before serving again

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_info: HttpServer

    def do_GET(self) -> None:
        self.server_info.requests.append(self.path)
        if self.server_info.fail_next > 0:
            self.server_info.fail_next -= 1
            self.send_error(503, "try again")
            return
        creds = self.server_info.credentials
        if creds is not None:
            expected = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.end_headers()
                return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(tmp_path) -> Iterator[HttpServer]:
    root = tmp_path / "www"
    root.mkdir()
    info = HttpServer(root=root, base_url="")
    handler = type("Handler", (_Handler,), {"server_info": info})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    info.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield info
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
