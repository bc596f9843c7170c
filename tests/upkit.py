"""Running the real ``finpulse up`` in tests: free ports, its environment, HTTP helpers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("sentiment", "chatbot", "recommendations")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (sockets held together so none repeats)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def up_env(home: Path, ports: list[int], **extra: str) -> dict[str, str]:
    """Environment for ``finpulse up``: ports[0..2] for the services, ports[3] a private Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FINPULSE_DEBUG")}
    env.update({"FINPULSE_HOME": str(home), "FINPULSE_SENTIMENT_PORT": str(ports[0]),
                "FINPULSE_CHATBOT_PORT": str(ports[1]), "FINPULSE_RECOMMENDATIONS_PORT": str(ports[2]),
                "REDIS_URL": f"redis://127.0.0.1:{ports[3]}/0", **extra})
    return env


def request_json(method: str, url: str, body: Any = None, timeout: float = 10,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body) for any status; no exception for 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_json(url: str) -> tuple[int, Any]:
    return request_json("GET", url, timeout=3)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def running_up(env: dict[str, str], *args: str, services: tuple[str, ...] = SERVICES,
               timeout: float = 90) -> Iterator[subprocess.Popen]:
    """``finpulse up ARGS`` until every service in ``services`` answers /healthz; SIGTERM after.

    The process's stdout is left for the caller (``proc.communicate()`` after the block).
    """
    home = Path(env["FINPULSE_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    errlog = (home / "up.err").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "up", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=errlog, text=True)
    ports = {name: env[f"FINPULSE_{name.upper()}_PORT"] for name in services}
    try:
        deadline = time.monotonic() + timeout
        healthy: set[str] = set()
        while len(healthy) < len(services) and time.monotonic() < deadline and proc.poll() is None:
            for name, port in ports.items():
                with contextlib.suppress(OSError, ValueError):
                    if get_json(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                        healthy.add(name)
            time.sleep(0.3)
        # read through a file of its own: a seek on errlog would move the children's shared offset,
        # and their next lines would overwrite the log from its start
        assert healthy == set(services), \
            f"not healthy within {timeout:.0f} s: {(home / 'up.err').read_text()[-3000:]}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        errlog.close()
