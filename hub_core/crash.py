"""A testing aid: ``HUB_CRASH_AT=<point>[:N]`` kills the process at a commit point.

The hub's exactly-once promises rest on what is committed where. To test them, the
process can be killed with SIGKILL (no clean-up, no ``finally``, as a power cut or an OOM
kill would) at a named point, the N-th time the point is reached (default the first).
``tests/chaos/`` kills at every point in turn and checks the next run ends where a run
without the crash would; ``bench/chaos.py`` kills at random points.

The environment is read only when the variable is set; unset, :func:`crash_point` costs a
dictionary lookup. Never set it in production.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

CRASH_ENV = "HUB_CRASH_AT"

#: Every point, and what has happened (and what has not) when the process dies there.
POINTS: dict[str, str] = {
    "link_listings.answered": "the channel answered link; nothing of it is stored",
    "sync_listings.sent": "the channel applied a sync call; the hub has not stored it",
    "get_orders.stored": "a chunk of orders is committed; none of it is acknowledged",
    "get_orders.acknowledged": "the channel was told; the hub has not stored that it was",
    "get_orders.chunk": "a chunk is stored and acknowledged; the next one may be stored too, "
    "not acknowledged",
    "sync_orders.sent": "the channel has the shipments of a call; the hub has not stored it",
    "channeladvisor.page": "one page of a paged read is received; the next is not asked",
    "channeladvisor.batch": "one $batch is answered; up to four others may be in flight",
    "channeladvisor.shipped": "one Ship is answered; the hub has not stored it",
    "channeladvisor.token": "a refreshed access token is received; it is not stored",
}

_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``HUB_CRASH_AT`` names ``name`` (and this is the
    N-th time it is reached, for ``name:N``)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
