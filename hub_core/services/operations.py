"""``hub run``: every supported operation of a connection, in order."""

from __future__ import annotations

from typing import Any

from hub_core.errors import ExitCode, HubError, RequirementNotMet
from hub_core.services.connections import open_run
from hub_core.services.context import Hub
from hub_core.services.listings import link_listings, sync_listings
from hub_core.services.orders import get_orders
from hub_core.services.shipments import sync_orders

#: The order of ``hub run``: link new SKUs, push changes, import orders, send shipments.
STEPS = (
    ("link_listings", link_listings),
    ("sync_listings", sync_listings),
    ("get_orders", get_orders),
    ("sync_orders", sync_orders),
)


def run_connection(hub: Hub, connection_name: str) -> tuple[dict[str, Any], ExitCode]:
    """Run each operation the channel supports; stop at the first that fails outright.

    :return: the JSON document (one entry per step) and the exit code: 1 if a step failed,
        4 if some records failed, else 0.
    """
    # Resolved once for every step; each step is a run of its own (own record, own client).
    context = open_run(hub, connection_name)
    steps: list[dict[str, Any]] = []
    code = ExitCode.OK
    for operation, action in STEPS:
        if not context.channel.supports(operation):
            steps.append({"operation": operation, "status": "not_supported"})
            continue
        try:
            result = action(hub, connection_name, context=context)
        except RequirementNotMet as exc:
            steps.append({"operation": operation, "status": "skipped", "message": exc.message})
            continue
        except HubError as exc:
            steps.append({"operation": operation, "status": "failed", "message": exc.message})
            code = ExitCode.FAILED
            break
        steps.append(result.to_json())
        if result.exit_code == ExitCode.FAILED:
            code = ExitCode.FAILED
            break
        if result.exit_code == ExitCode.PARTIAL:
            code = ExitCode.PARTIAL
    status = {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}.get(code, "failed")
    return {"connection": connection_name, "status": status, "operations": steps}, code
