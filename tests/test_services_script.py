"""``scripts/services`` (run by ``.ci/run``) starts a service that is installed but down.

Each test points the script at a private server on a free port (``HUB_SERVICES_*``), so the
machine's own PostgreSQL, Redis and RabbitMQ are never touched: the script must find it down,
start it, wait until it answers, and leave a second call with nothing to do. The test stops
the server it caused by its pid (from the server's pid file), bounded in time. Skipped with
the reason where the server's binaries are absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services"
#: Upper bound of the script's own waits, and of each wait here (seconds).
WAIT = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "HUB_SERVICES_WAIT": str(WAIT), **env},
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _stop(pid: int) -> None:
    """SIGTERM the server by its pid; SIGKILL if it is still there after WAIT seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (the script skips such a service too)")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory in /tmp that a server run as another user (postgres) can reach."""
    path = Path(tempfile.mkdtemp(prefix="hub-services-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_redis_down_is_started_once(scratch: Path) -> None:
    _require("redis-server", "redis-cli")
    port = _free_port()
    env = {"HUB_SERVICES": "redis", "HUB_SERVICES_REDIS_PORT": str(port)}
    env["HUB_SERVICES_REDIS_DIR"] = str(scratch)
    pidfile = scratch / f"redis-{port}.pid"
    assert not _answers(port)
    started = _run(**env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"starting Redis on 127.0.0.1:{port}" in started.stderr
        assert _answers(port)
        pong = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert pong.stdout.strip() == "PONG"
        assert pidfile.exists(), "the script gave Redis no pid file (to stop it by)"
        again = _run(**env)  # up now: nothing to start
        assert again.returncode == 0 and "starting" not in again.stderr
    finally:
        if pidfile.exists():
            _stop(int(pidfile.read_text().split()[0]))
    assert not _answers(port)


def test_postgresql_down_is_initialised_and_started_once(scratch: Path) -> None:
    _require("pg_ctl", "initdb", "pg_isready")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb cannot run as root")
    port = _free_port()
    data = scratch / "pgdata"
    env = {
        "HUB_SERVICES": "postgresql",
        "HUB_SERVICES_PG_PORT": str(port),
        "HUB_SERVICES_PG_DATA": str(data),
    }
    assert not _answers(port)
    started = _run(**env)
    pidfile = data / "postmaster.pid"
    try:
        assert started.returncode == 0, started.stderr
        assert f"starting PostgreSQL on 127.0.0.1:{port}" in started.stderr
        assert (data / "PG_VERSION").exists()
        ready = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        assert ready.returncode == 0
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=5
        ) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        again = _run(**env)
        assert again.returncode == 0 and "starting" not in again.stderr
    finally:
        if pidfile.exists():
            _stop(int(pidfile.read_text().split()[0]))
    assert not _answers(port)


def test_rabbitmq_down_is_started_once(scratch: Path) -> None:
    _require("rabbitmq-server")
    port, dist_port = _free_port(), _free_port()
    base = scratch / "rabbitmq"
    env = {
        "HUB_SERVICES": "rabbitmq",
        "HUB_SERVICES_RABBITMQ_PORT": str(port),
        "HUB_SERVICES_RABBITMQ_DIST_PORT": str(dist_port),
        "HUB_SERVICES_RABBITMQ_BASE": str(base),
    }
    assert not _answers(port)
    started = _run(**env)
    pidfile = base / "pid"
    try:
        assert started.returncode == 0, started.stderr
        assert f"starting RabbitMQ on 127.0.0.1:{port}" in started.stderr
        assert _answers(port), started.stderr
        from kombu import Connection

        with Connection(f"amqp://guest:guest@127.0.0.1:{port}//", connect_timeout=10) as amqp:
            amqp.ensure_connection(max_retries=3, timeout=10)  # it speaks AMQP
        assert pidfile.exists(), "the script gave RabbitMQ no pid file (to stop it by)"
        again = _run(**env)
        assert again.returncode == 0 and "starting" not in again.stderr
    finally:
        if pidfile.exists() and pidfile.read_text().strip():
            _stop(int(pidfile.read_text().split()[0]))
    assert not _answers(port)


def test_a_service_not_asked_for_is_left_alone() -> None:
    """``HUB_SERVICES`` limits the script: a down Redis it was not asked about stays down."""
    _require("redis-server", "redis-cli")
    port = _free_port()
    result = _run(HUB_SERVICES="none", HUB_SERVICES_REDIS_PORT=str(port))
    assert result.returncode == 0 and "starting" not in result.stderr
    assert not _answers(port)
