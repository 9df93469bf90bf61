"""The request log: one entry per API request (batch parts included) plus running totals.

Tests and benchmarks assert on counts from here, never on wall-clock time. Admin calls
under `/_sandbox/` are not logged.

Each `/v1` entry also carries what the client sent: `body`, the request body parsed as JSON
(None when there was none, it is not JSON, e.g. a `$batch` envelope whose parts carry their
own, or it was not kept), and `body_size`, its length in bytes. Bodies are kept for the most
recent `max_bodies` entries only (older entries lose theirs, counted in `bodies_dropped`),
and a body over `MAX_BODY_BYTES` is never parsed: a long benchmark's log stays small.
Token requests never keep theirs (the form carries the refresh token).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

#: Request bodies the log keeps by default (the most recent ones).
DEFAULT_MAX_BODIES = 10_000
#: Larger bodies are logged by size only.
MAX_BODY_BYTES = 64 * 1024

_KEY = re.compile(r"\((?:\d+|'(?:[^']|'')*')\)")


def endpoint_of(method: str, path: str) -> str:
    """`POST /v1/Orders(123)/Ship` -> `POST /v1/Orders({id})/Ship` (for per-endpoint counts)."""
    return f"{method.upper()} {_KEY.sub('({id})', path)}"


@dataclass
class LogEntry:
    """One request as the sandbox saw it."""

    seq: int
    time: float
    method: str
    path: str
    query: str
    endpoint: str
    status: int  # 0 when the connection was dropped without a response
    profile_id: int | None
    application_id: str | None
    in_batch: bool
    batch_seq: int | None
    units: int  # rate-limit budget units consumed
    throttled: str | None  # "rate" | "in_flight" when the sandbox's limits refused it
    fault: str | None  # injected fault kind
    applied: bool  # whether the request reached its handler (a change may have happened)
    body: Any = None  # the request body parsed as JSON, while kept (see the module doc)
    body_size: int = 0  # bytes of the request body (0: none)


class RequestLog:
    """Thread-safe request log with per-endpoint counts and limit statistics."""

    def __init__(self, max_entries: int = 200_000, max_bodies: int = DEFAULT_MAX_BODIES) -> None:
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self._max_bodies = max_bodies
        self.reset()

    @property
    def max_bodies(self) -> int:
        """How many of the most recent entries keep their request body (0: none)."""
        return self._max_bodies

    @max_bodies.setter
    def max_bodies(self, value: int) -> None:
        with self._lock:
            self._max_bodies = int(value)
            self._trim_bodies()

    def parse_body(self, raw: bytes | None) -> Any:
        """`raw` parsed as JSON, or None (empty, not JSON, too big, or bodies not kept)."""
        if not raw or self._max_bodies <= 0 or len(raw) > MAX_BODY_BYTES:
            return None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            return None

    def _trim_bodies(self) -> None:
        """Drop the bodies of the oldest entries beyond `max_bodies` (lock held)."""
        while len(self._with_body) > max(self._max_bodies, 0):
            self._with_body.popleft().body = None
            self._bodies_dropped += 1

    def reset(self) -> None:
        """Drop entries and totals (sequence numbers keep increasing)."""
        with self._lock:
            self._entries: list[LogEntry] = []
            self._seq = getattr(self, "_seq", 0)
            self._counts: Counter[str] = Counter()
            self._status: Counter[int] = Counter()
            self._faults: Counter[str] = Counter()
            self._units_by_profile: Counter[int] = Counter()
            self._units = 0
            self._throttled = {"rate": 0, "in_flight": 0}
            self._batches = 0
            self._batch_parts = 0
            self._dropped_entries = 0
            # Entries still holding a body, oldest first (what `_trim_bodies` empties).
            self._with_body: deque[LogEntry] = deque()
            self._bodies_dropped = 0

    def next_seq(self) -> int:
        """Reserve a sequence number (a batch reserves its own before its parts log)."""
        with self._lock:
            self._seq += 1
            return self._seq

    def record(self, entry: LogEntry) -> None:
        """Add an entry and update the totals."""
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self.max_entries:
                # Keep memory bounded in long benchmarks; totals stay exact.
                drop = len(self._entries) - self.max_entries
                del self._entries[:drop]
                self._dropped_entries += drop
            if entry.body is not None:
                self._with_body.append(entry)
                self._trim_bodies()
            self._counts[entry.endpoint] += 1
            self._status[entry.status] += 1
            if entry.fault:
                self._faults[entry.fault] += 1
            if entry.units:
                self._units += entry.units
                if entry.profile_id is not None:
                    self._units_by_profile[entry.profile_id] += entry.units
            if entry.throttled:
                self._throttled[entry.throttled] += 1
            if entry.in_batch:
                self._batch_parts += 1
            elif entry.endpoint.endswith("/v1/$batch"):
                self._batches += 1

    def entries(self, since: int = 0) -> list[LogEntry]:
        """Entries with `seq > since`, in the order they finished."""
        with self._lock:
            return [e for e in self._entries if e.seq > since]

    def snapshot(
        self, *, since: int = 0, include_entries: bool = True, in_flight: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON-ready log: entries (optional) and statistics."""
        with self._lock:
            out: dict[str, Any] = {
                "total": sum(self._status.values()),
                "counts": dict(self._counts),
                "status_counts": {str(k): v for k, v in self._status.items()},
                "total_units": self._units,
                "units_by_profile": {str(k): v for k, v in self._units_by_profile.items()},
                "throttled": self._throttled["rate"] + self._throttled["in_flight"],
                "throttled_rate": self._throttled["rate"],
                "throttled_in_flight": self._throttled["in_flight"],
                "status_429": self._status.get(429, 0),
                "faults": dict(self._faults),
                "batches": self._batches,
                "batch_parts": self._batch_parts,
                "max_in_flight": max(in_flight["admitted"].values(), default=0),
                "max_in_flight_by_application": dict(in_flight["admitted"]),
                "max_concurrent_attempts": max(in_flight["attempted"].values(), default=0),
                "dropped_entries": self._dropped_entries,
                "bodies_dropped": self._bodies_dropped,
                "last_seq": self._seq,
                "generated_at": time.time(),
            }
            if include_entries:
                out["entries"] = [asdict(e) for e in self._entries if e.seq > since]
            return out
