"""Stopping a process a test or a benchmark started (a worker, a scheduler), by its own pid."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL if it is still there after
    ``grace`` seconds; nothing when it has already ended."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
