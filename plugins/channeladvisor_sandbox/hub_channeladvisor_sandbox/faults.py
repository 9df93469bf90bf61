"""Injected faults, deterministic from the sandbox seed.

A `FaultRule` says which requests it matches (a substring of the path, e.g. `Ship`,
`$batch`, `UpdateQuantity`, `oauth2/token`; optionally a method; top-level requests, batch
parts or both), what happens (`kind`), how often (`rate`) and how many times at most
(`count`: "fail the next N matching requests" is `rate=1, count=N`), and for the status
kinds optionally the error text (`message`).

Kinds:

- `500`, `503`, `429`, `401`: answer that status without applying the request (`429` with
  `{"Message": "Too Many Requests"}` and Retry-After unless switched off; `401` rejects a
  valid token once, the token stays valid; `503` has a plain-text body like a proxy's).
- `400`, `404`: a permanent client error, the OData error `{"error": {"code": "",
  "message": ...}}` without applying the request. Its text is the rule's `message`, else one
  naming the injected fault and the request. Aim it at one record with the key in the
  pattern (`Orders(42)/Ship`, `Products(7)`) to refuse that record only.
- `reset`: close the connection without any response; nothing is applied.
- `timeout`: apply the request, then hold the response for `delay_s` seconds (longer than
  the client's timeout) before sending it.
- `lost_response`: apply the request, then close the connection without a response.

Hostile answers (issue 11; the hub must refuse each clearly and never follow a foreign URL):

- `html`: answer an HTML error page, as a proxy or load balancer would, with `status`
  (default 502; 200 for a page where JSON was expected); nothing is applied.
- `redirect`: answer a redirect (`status`, default 302) to the same path on `target`
  (default `https://elsewhere.example`); nothing is applied.
- `invalid_json`: apply the request, then answer 200 with its JSON cut in half.
- `wrong_types`: apply the request, then answer its JSON with every `ID` turned into a
  non-numeric text, every `Quantity` into `"lots"`, every `Sku` into a number and
  `@odata.count` into `"many"`. Inside a `$batch` it spoils the part's body.
- `foreign_next_link`: apply the request, then answer its JSON with `@odata.nextLink`
  pointing at the same URL on `target` (a scheme change counts: `http://` + the same host).

Inside a `$batch`, parts can only get the status kinds and `wrong_types` (the connection
belongs to the whole batch); the other kinds only match top-level requests, the batch
envelope included.

Determinism: whether the n-th request matching rule i fires depends only on (seed, i, n),
via a hash; so a sequential client sees the same faults on every run, and concurrent
requests do not disturb the draws of other rules.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from .constants import FAULT_KINDS

STATUS_KINDS = ("500", "503", "429", "401", "400", "404")
CONNECTION_KINDS = ("reset", "timeout", "lost_response")
#: Answered instead of the request (nothing applied).
INSTEAD_KINDS = ("html", "redirect")
#: The request is applied, then its answer is spoiled.
SPOIL_KINDS = ("invalid_json", "wrong_types", "foreign_next_link")
#: Kinds a batch part can get.
PART_KINDS = (*STATUS_KINDS, "wrong_types")
DEFAULT_TARGET = "https://elsewhere.example"
SCOPES = ("any", "top", "batch")


@dataclass
class FaultRule:
    """One fault switch. See the module docstring for the meaning of each field."""

    kind: str
    rate: float = 1.0
    pattern: str | None = None
    method: str | None = None
    count: int | None = None
    delay_s: float = 5.0
    scope: str = "any"
    message: str | None = None
    #: The status of `html` (default 502) and `redirect` (default 302).
    status: int | None = None
    #: Where `redirect` and `foreign_next_link` point (scheme://host[:port]).
    target: str | None = None
    # Counters (kept across requests; shown by the admin surface).
    matched: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = float(self.rate)
        if self.count is not None and int(self.count) < 0:
            raise ValueError("fault count must be >= 0")
        if self.scope not in SCOPES:
            raise ValueError(f"fault scope must be one of {SCOPES}")
        if self.method is not None:
            self.method = self.method.upper()
        if float(self.delay_s) < 0:
            raise ValueError("delay_s must be >= 0")
        if self.message is not None:
            if not isinstance(self.message, str):
                raise ValueError("fault message must be a string")
            # A dropped connection has no body to carry a text.
            if self.kind not in STATUS_KINDS:
                raise ValueError(f"fault kind {self.kind!r} answers nothing: it takes no message")
        if self.status is not None:
            if self.kind == "html" and not 200 <= int(self.status) <= 599:
                raise ValueError("the status of an html fault must be from 200 to 599")
            if self.kind == "redirect" and int(self.status) not in (301, 302, 303, 307, 308):
                raise ValueError("the status of a redirect fault must be 301, 302, 303, 307 or 308")
            if self.kind not in INSTEAD_KINDS:
                raise ValueError(f"fault kind {self.kind!r} takes no status")
            self.status = int(self.status)
        if self.target is not None:
            if self.kind not in ("redirect", "foreign_next_link"):
                raise ValueError(f"fault kind {self.kind!r} takes no target")
            if "://" not in str(self.target):
                raise ValueError("a fault target is scheme://host[:port], e.g. http://evil.example")

    @property
    def target_origin(self) -> str:
        """The foreign origin of `redirect` and `foreign_next_link`."""
        return (self.target or DEFAULT_TARGET).rstrip("/")

    def matches(self, method: str, path: str, in_batch: bool) -> bool:
        """Whether the rule applies to this request (ignoring rate and remaining count)."""
        if self.count is not None and self.count <= 0:
            return False
        if in_batch and (self.scope == "top" or self.kind not in PART_KINDS):
            return False
        if not in_batch and self.scope == "batch":
            return False
        if self.method is not None and self.method != method.upper():
            return False
        return self.pattern is None or self.pattern in path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with counters)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Build from a JSON object; unknown keys are an error."""
        known = {f.name for f in fields(cls)} - {"matched", "injected"}
        unknown = set(data) - known - {"matched", "injected"}
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FaultConfig:
    """An ordered list of fault rules (the first rule that fires wins)."""

    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def from_rates(
        cls, rates: dict[str, float], *, pattern: str | None = None, delay_s: float = 5.0
    ) -> FaultConfig:
        """One rule per kind, e.g. `FaultConfig.from_rates({"500": 0.05, "reset": 0.01})`."""
        return cls(
            [FaultRule(k, rate=r, pattern=pattern, delay_s=delay_s) for k, r in rates.items()]
        )

    @classmethod
    def from_dict(cls, data: Any) -> FaultConfig:
        """From `{"rules": [...]}`, a bare list of rules, or `{"rates": {...}}`."""
        if isinstance(data, list):
            return cls([FaultRule.from_dict(r) for r in data])
        if not isinstance(data, dict):
            raise ValueError("faults must be an object or a list of rules")
        if "rates" in data:
            return cls.from_rates(
                data["rates"], pattern=data.get("pattern"), delay_s=data.get("delay_s", 5.0)
            )
        return cls([FaultRule.from_dict(r) for r in data.get("rules", [])])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rules": [r.to_dict() for r in self.rules]}


def _uniform(seed: int, rule_index: int, n: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{rule_index}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, seed: int, config: FaultConfig | None = None) -> None:
        self.seed = seed
        self.config = config or FaultConfig()
        self._lock = threading.Lock()

    def pick(self, method: str, path: str, in_batch: bool) -> FaultRule | None:
        """The rule that fires for this request, or None."""
        with self._lock:
            for index, rule in enumerate(self.config.rules):
                if not rule.matches(method, path, in_batch):
                    continue
                n = rule.matched
                rule.matched += 1
                if rule.rate >= 1.0 or _uniform(self.seed, index, n) < rule.rate:
                    rule.injected += 1
                    if rule.count is not None:
                        rule.count -= 1
                    return rule
            return None

    def add(self, rule: FaultRule) -> None:
        """Append a rule."""
        with self._lock:
            self.config.rules.append(rule)

    def replace(self, config: FaultConfig) -> None:
        """Replace all rules."""
        with self._lock:
            self.config = config

    def snapshot(self) -> dict[str, Any]:
        """Rules with their counters."""
        with self._lock:
            return self.config.to_dict()
