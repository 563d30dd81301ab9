"""The standalone push server in a background thread of the test, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PushServer:
    def __init__(self, spec_dir: Path, engine: Engine) -> None:
        import uvicorn

        from druidflow.push.http import standalone_app

        self.port = free_port()
        config = uvicorn.Config(standalone_app(spec_dir, engine), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="push-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PushServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the push server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
