"""The service context and the result every operation returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hub_core.channel import NullProgress, Outcome, Progress
from hub_core.db import Database
from hub_core.errors import ExitCode
from hub_core.plugins import Registry


@dataclasses.dataclass
class Hub:
    """What every service needs: the database and the installed channels.

    ``progress`` makes a progress reporter for a label (the CLI draws bars on stderr).
    ``trigger`` is what starts this hub's runs (``cli``, ``dispatch``, ``schedule``); every run
    records it.
    """

    db: Database
    registry: Registry
    progress: Callable[[str], Progress] = lambda label: NullProgress()
    trigger: str = "cli"

    @classmethod
    def open(cls, url: str | None = None, **registry_kwargs: Any) -> Hub:
        """Open the database at ``url`` (migrating it) and load the installed plugins."""
        return cls(db=Database(url), registry=Registry.load(**registry_kwargs))


@dataclasses.dataclass
class RecordResult:
    """The outcome of one record (contract: ref, outcome, message)."""

    ref: str
    outcome: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record's JSON shape."""
        return {"ref": self.ref, "outcome": self.outcome, "message": self.message}


@dataclasses.dataclass
class OperationResult:
    """What an operation did: the JSON of operation commands (contract) and its exit code."""

    run_id: int | None
    operation: str
    status: str
    counts: dict[str, int]
    records: list[RecordResult]
    message: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> int:
        """How many records failed."""
        return sum(1 for r in self.records if r.outcome == Outcome.FAILED)

    @property
    def exit_code(self) -> ExitCode:
        """0 when every record went through, 4 when some failed, 1 when the run failed."""
        if self.status == "failed":
            return ExitCode.FAILED
        return ExitCode.PARTIAL if self.failed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON shape of an operation command."""
        data = {
            "run_id": self.run_id,
            "operation": self.operation,
            "status": self.status,
            "counts": self.counts,
            "records": [r.to_json() for r in self.records],
        }
        if self.message:
            data["message"] = self.message
        data.update(self.extra)
        return data
