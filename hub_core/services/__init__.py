"""The hub's services: what the CLI calls, usable from Python.

Every service takes a :class:`Hub` (database + channel registry). Sessions and transactions
are opened here, never in a plugin; channel calls happen outside open write transactions.
"""

from hub_core.services.context import Hub, OperationResult

__all__ = ["Hub", "OperationResult"]
