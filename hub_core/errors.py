"""One exception tree for the hub.

Every error carries two texts: ``message`` is for the user (what is wrong and how to fix it)
and ``detail`` is for logs and run records (what happened inside). Secrets are masked at the
output boundaries by :mod:`hub_core.redaction`. The CLI turns each class into the exit code of
the contract (design §5) without a stack trace.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any


class ExitCode(enum.IntEnum):
    """The exit codes of the ``hub`` command (contract)."""

    #: Everything asked for was done.
    OK = 0
    #: Failed: authentication, network, or an internal error.
    FAILED = 1
    #: Bad usage or invalid input; nothing was changed.
    USAGE = 2
    #: The channel does not support the operation; nothing was changed.
    NOT_SUPPORTED = 3
    #: Finished, but some records failed; the others were applied.
    PARTIAL = 4


class HubError(Exception):
    """Base of every error the hub reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED
    #: The operation's result when it failed after its run started (set by the run recorder),
    #: so ``--json`` still prints the run's document.
    run_result: Any = None

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message

    def __str__(self) -> str:
        return self.message


class InvalidInput(HubError):
    """The user's input is wrong; nothing was changed (exit 2)."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, errors: Iterable[str] = (), detail: str | None = None):
        self.errors = list(errors)
        if self.errors:
            message = message + "\n" + "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(message, detail=detail)


class NotFound(InvalidInput):
    """A named thing (connection, SKU, order, run) does not exist (exit 2)."""


class RequirementNotMet(InvalidInput):
    """An operation needs something set up first, such as shipping mappings (exit 2)."""


class NotSupported(HubError):
    """The channel does not support the operation; nothing was changed (exit 3)."""

    exit_code = ExitCode.NOT_SUPPORTED


class PluginError(HubError):
    """A plugin is broken: bad hook implementation, duplicate channel name (exit 1)."""


class ChannelError(HubError):
    """The channel failed: network, server, or an answer the hub cannot use (exit 1)."""


class AuthError(ChannelError):
    """The channel refused the credentials (exit 1)."""


class NeedsReauth(AuthError):
    """The refresh token was refused: the merchant must reconnect (exit 1)."""


class RateLimited(ChannelError):
    """The channel kept refusing requests for going over its limits (exit 1)."""


class RunInProgress(HubError):
    """Another run of the same operation on the same connection holds its lease (exit 1).

    ``run_id`` names that run and ``since`` when it started; a task may retry later.
    """

    def __init__(self, message: str, *, run_id: int, since: Any, expires_at: Any = None):
        super().__init__(message)
        self.run_id = run_id
        self.since = since
        self.expires_at = expires_at


class LeaseLost(HubError):
    """A run no longer holds its lease (another run took over, or it could not be renewed in
    time): it stopped at a commit point, before any further channel write (exit 1)."""


class RecordFailed(HubError):
    """One record failed; the operation goes on with the others (counted, exit 4)."""
