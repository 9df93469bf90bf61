"""``hub connections test``: do the tokens work, is the profile visible, is the DC usable?

Three checks, each with a message saying exactly what is wrong and what to run:

* ``token`` — the refresh token, application id and shared secret give an access token (a
  real refresh, stored on the connection like any other);
* ``profile`` — ``GET /v1/Profiles`` lists the connection's ``profile_id``;
* ``distribution_center`` — ``GET /v1/DistributionCenters`` lists ``distribution_center_id``,
  not deleted and not externally managed (quantity cannot be written there).

A connection marked ``needs_reauth`` is tested too: that is how a merchant checks new tokens,
and a working refresh marks it ``ok`` again.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from hub_channeladvisor.client.api import ChannelAdvisorClient, is_externally_managed
from hub_core.channel import ChannelConnection, ConnectionCheck
from hub_core.errors import AuthError, ChannelError, HubError, NeedsReauth


def run_checks(connection: ChannelConnection, **client_kwargs: Any) -> list[ConnectionCheck]:
    """Run the checks; a check that cannot run says why."""
    try:
        client = ChannelAdvisorClient(connection, check_health=False, **client_kwargs)
    except HubError as exc:
        return [ConnectionCheck("credentials", False, exc.message)]
    with client:
        token = _check_token(client, connection)
        if not token.ok:
            skipped = "Not checked: there is no working access token."
            return [
                token,
                ConnectionCheck("profile", False, skipped),
                ConnectionCheck("distribution_center", False, skipped),
            ]
        profile = _check_profile(client)
        dc = _check_distribution_center(client)
    return [token, profile, dc]


def _check_token(client: ChannelAdvisorClient, connection: ChannelConnection) -> ConnectionCheck:
    try:
        client.auth.refresh()
    except NeedsReauth as exc:
        return ConnectionCheck("token", False, exc.message)
    except HubError as exc:
        return ConnectionCheck(
            "token", False, f"Could not get an access token: {exc.message}"
        )
    expires = client.auth.store.expires_at
    until = (
        datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if expires else "?"
    )
    if connection.health == "needs_reauth":
        connection.set_health("ok", "The refresh token works again.")
    return ConnectionCheck(
        "token", True, f"ChannelAdvisor issued an access token (valid until {until})."
    )


def _check_profile(client: ChannelAdvisorClient) -> ConnectionCheck:
    try:
        profiles = client.profiles()
    except (AuthError, ChannelError) as exc:
        return ConnectionCheck("profile", False, f"Could not list profiles: {exc}")
    ids = {_int(p.get("ID")): p for p in profiles}
    pid = client.profile_id
    if pid in ids:
        who = ids[pid].get("CompanyName") or ids[pid].get("AccountName") or ""
        return ConnectionCheck(
            "profile",
            True,
            f"Profile {pid}{f' ({who})' if who else ''} is visible to these tokens.",
        )
    seen = ", ".join(
        f"{p.get('ID')} ({p.get('CompanyName') or p.get('AccountName') or '?'})" for p in profiles
    )
    return ConnectionCheck(
        "profile",
        False,
        f"Profile {pid} is not visible to these tokens; they see: {seen or 'no profile'}. "
        f"Set the right one: hub connections configure {shlex.quote(client.name)} "
        "--set profile_id=ID",
    )


def _check_distribution_center(client: ChannelAdvisorClient) -> ConnectionCheck:
    try:
        centers = client.distribution_centers()
    except (AuthError, ChannelError) as exc:
        return ConnectionCheck(
            "distribution_center",
            False,
            f"Could not list distribution centers: {exc}",
        )
    wanted = int(client.settings["distribution_center_id"])
    usable = [c for c in centers if not c.get("IsDeleted") and not is_externally_managed(c)]
    choices = ", ".join(f"{c.get('ID')} ({c.get('Name') or c.get('Code') or '?'})" for c in usable)
    fix = (
        f"Choose one of: {choices or 'none usable'} "
        f"(hub connections configure {shlex.quote(client.name)} --set distribution_center_id=ID)."
    )
    center = next((c for c in centers if _int(c.get("ID")) == wanted), None)
    if center is None:
        return ConnectionCheck(
            "distribution_center",
            False,
            f"Distribution center {wanted} does not exist in this account. {fix}",
        )
    label = f"{wanted} ({center.get('Name') or center.get('Code') or '?'})"
    if center.get("IsDeleted"):
        return ConnectionCheck(
            "distribution_center", False, f"Distribution center {label} is deleted. {fix}"
        )
    if is_externally_managed(center):
        return ConnectionCheck(
            "distribution_center",
            False,
            f"Distribution center {label} is externally managed (its quantity is not yours to "
            f"set). {fix}",
        )
    return ConnectionCheck(
        "distribution_center", True, f"Distribution center {label} takes quantity updates."
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
