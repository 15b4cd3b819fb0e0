"""Real HTTP servers for the conformance suite: nginx, uvicorn, hypercorn, aiohttp.web.

``start_server(name, folder)`` runs one in a child process on a free
127.0.0.1 port, serving the routes of tests/http/realservers_app.py (nginx:
the same routes from ``NGINX_CONF``), and returns it once it accepts
connections; ``stop()`` ends it. A server that is not installed skips the
test locally and fails it when ``CI`` is set (tests/testutil.py's rule).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from testutil import IN_CI, free_port, need_binary

SERVERS = ("nginx", "uvicorn", "hypercorn", "aiohttp")
HERE = Path(__file__).resolve().parent

# The routes of realservers_app, from nginx itself: return, SSI (which drops
# Content-Length, so the body goes chunked) and the gzip filter.
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        location = /cl {{ return 200 "hello"; }}
        location = /port {{ return 200 "$remote_port"; }}
        location = /nocontent {{ return 204; }}
        location = /chunked {{ ssi on; ssi_types text/plain; return 200 "hello world"; }}
        location = /gzip {{
            gzip on; gzip_types text/plain; gzip_min_length 1;
            return 200 "hello gzip hello gzip hello gzip";
        }}
    }}
}}
"""


def _need_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message} (CI must install the test extras)")
        pytest.skip(message)


@dataclass
class RealServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _command(name: str, port: int, folder: Path) -> list[str]:
    if name == "nginx":
        nginx = need_binary("nginx")
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=folder, port=port))
        return [nginx, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"]
    _need_module(name)
    if name == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "realservers_app:asgi", "--port", str(port),
                "--host", "127.0.0.1", "--log-level", "warning", "--lifespan", "off"]  # fmt: skip
    if name == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "realservers_app:asgi",
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    return [sys.executable, str(HERE / "realservers_app.py"), str(port)]


def start_server(name: str, folder: Path) -> RealServer:
    """``name`` (one of SERVERS) listening on a free port; skips when not installed."""
    port = free_port()
    command = _command(name, port, folder)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = RealServer(name, port, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            output = (folder / f"{name}.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"{name} exited with {process.returncode}: {output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                log.close()
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    log.close()
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port} within 20 s")
