"""The service context and the result every operation returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hub_core.channel import ChannelConnection, NullProgress, Outcome, Progress
from hub_core.db import Database
from hub_core.errors import ExitCode, NeedsReauth
from hub_core.plugins import Channel, Registry
from hub_core.redaction import Redactor

if TYPE_CHECKING:
    from hub_core.models import Connection

HEALTH_NEEDS_REAUTH = "needs_reauth"


@dataclasses.dataclass
class Hub:
    """What every service needs: the database and the installed channels.

    ``progress`` makes a progress reporter for a label (the CLI draws bars on stderr).
    ``trigger`` is what starts this hub's runs (``cli``, ``dispatch``, ``schedule``); every run
    records it. ``redactor`` knows the secrets of every connection this hub opened: the run
    recorder and the CLI mask what they store and print with it.
    """

    db: Database
    registry: Registry
    progress: Callable[[str], Progress] = lambda label: NullProgress()
    trigger: str = "cli"
    redactor: Redactor = dataclasses.field(default_factory=Redactor)

    @classmethod
    def open(cls, url: str | None = None, **registry_kwargs: Any) -> Hub:
        """Open the database at ``url`` (migrating it) and load the installed plugins."""
        return cls(db=Database(url), registry=Registry.load(**registry_kwargs))


@dataclasses.dataclass
class RunContext:
    """One run's connection, resolved once (:func:`hub_core.services.connections.open_run`).

    It holds the connection's stored row (detached: read, never written), its channel, and the
    plugin's view of it (``connection``: validated values, settings with the schema's
    defaults, secrets and their redactor). The service reads from it, the run recorder takes
    the run's connection from it, and every hook call of the run gets the same
    ``connection``, where the plugin keeps its per-run resources; they are closed with
    :meth:`close` when the run ends (the recorder does it). ``hub run`` shares one context
    between its steps: each step is a run of its own, with its own resources.
    """

    hub: Hub
    row: Connection
    channel: Channel
    connection: ChannelConnection
    #: Why the channel refused the credentials, when it did (shown with the advice).
    health_message: str = ""
    #: Opened for the connection test: a connection needing reauth is tried too.
    needing_reauth: bool = False
    _checked: set[str] = dataclasses.field(default_factory=set, repr=False)

    @property
    def name(self) -> str:
        """The connection's name."""
        return self.connection.name

    @property
    def settings(self) -> Mapping[str, Any]:
        """The channel's settings of the connection, defaults applied by its schema."""
        return self.connection.settings

    def check_health(self) -> None:
        """Refuse a connection the channel refused for good, before anything is sent.

        :raises NeedsReauth: it is marked ``needs_reauth`` (unless opened for its test).
        """
        if self.connection.health == HEALTH_NEEDS_REAUTH and not self.needing_reauth:
            raise NeedsReauth(self.channel.reauth_message(self.name, self.health_message))

    def require(self, operation: str) -> None:
        """Refuse ``operation`` (exit 3) unless the channel supports it; checked once a run."""
        if operation not in self._checked:
            self.hub.registry.check_supported(self.channel, operation)
            self._checked.add(operation)

    def call(self, operation: str, **kwargs: Any) -> Any:
        """Call ``operation`` on the channel's plugin with this run's connection (see
        :meth:`hub_core.plugins.Registry.call`)."""
        self.require(operation)
        return self.hub.registry.invoke(
            self.channel, operation, connection=self.connection, **kwargs
        )

    def close(self) -> None:
        """End the run's resources (the plugin's HTTP client); the context stays usable."""
        self.connection.close_resources()

    def __enter__(self) -> RunContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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
