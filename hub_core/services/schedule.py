"""Schedule settings: how often the scheduler (``hub schedule``) runs each operation.

Every connection takes them, whatever its channel (design §5): ``schedule_link_listings``
(default ``1h``), ``schedule_sync_listings``, ``schedule_get_orders`` and
``schedule_sync_orders`` (default ``15m``). A value is a whole number of seconds, minutes,
hours or days (``30s``, ``15m``, ``1h``, ``1d``) or ``off``. They live in the connection's
settings beside the channel's own, but only the core reads them: a plugin never sees them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields

from hub_core.errors import InvalidInput

#: The operations the scheduler runs, in ``hub run`` order.
SCHEDULED_OPERATIONS = ("link_listings", "sync_listings", "get_orders", "sync_orders")
#: Setting name -> default interval.
SCHEDULE_DEFAULTS = {
    "schedule_link_listings": "1h",
    "schedule_sync_listings": "15m",
    "schedule_get_orders": "15m",
    "schedule_sync_orders": "15m",
}
OFF = "off"
#: Divides every interval (benchmarks and demos run the schedule faster than real time).
SCALE_ENV = "HUB_SCHEDULE_SCALE"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)


def setting_name(operation: str) -> str:
    """The setting that holds an operation's interval."""
    return f"schedule_{operation}"


def parse_interval(value: str) -> int | None:
    """Seconds of an interval such as ``15m``; ``None`` for ``off``.

    :raises ValueError: with a message saying what is accepted.
    """
    text = str(value).strip().lower()
    if text == OFF:
        return None
    match = _INTERVAL.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"{value!r} is not an interval: give a whole number with s, m, h or d "
            "(e.g. 15m, 1h), or off"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _validate_interval(value: str) -> None:
    try:
        parse_interval(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class ScheduleSettingsSchema(Schema):
    """The schedule settings every connection accepts (validated all at once)."""

    schedule_link_listings = fields.String(
        load_default=SCHEDULE_DEFAULTS["schedule_link_listings"], validate=_validate_interval
    )
    schedule_sync_listings = fields.String(
        load_default=SCHEDULE_DEFAULTS["schedule_sync_listings"], validate=_validate_interval
    )
    schedule_get_orders = fields.String(
        load_default=SCHEDULE_DEFAULTS["schedule_get_orders"], validate=_validate_interval
    )
    schedule_sync_orders = fields.String(
        load_default=SCHEDULE_DEFAULTS["schedule_sync_orders"], validate=_validate_interval
    )


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split stored or given settings into (the channel's, the schedule's)."""
    channel = {k: v for k, v in settings.items() if k not in SCHEDULE_DEFAULTS}
    schedule = {k: v for k, v in settings.items() if k in SCHEDULE_DEFAULTS}
    return channel, schedule


def schedule_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    """A connection's schedule settings with the defaults applied (stored values are valid)."""
    _, given = split_settings(settings)
    return {key: str(given.get(key, default)) for key, default in SCHEDULE_DEFAULTS.items()}


def intervals(settings: Mapping[str, Any]) -> dict[str, float]:
    """Seconds between two runs of each scheduled operation (``off`` ones left out),
    divided by ``HUB_SCHEDULE_SCALE`` when it is set."""
    scale = _scale()
    result: dict[str, float] = {}
    values = schedule_settings(settings)
    for operation in SCHEDULED_OPERATIONS:
        try:
            seconds = parse_interval(values[setting_name(operation)])
        except ValueError:  # written around the validation: use the default
            seconds = parse_interval(SCHEDULE_DEFAULTS[setting_name(operation)])
        if seconds is not None:
            result[operation] = seconds / scale
    return result


def _scale() -> float:
    raw = os.environ.get(SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = 0.0
    if not scale > 0:
        raise InvalidInput(f"{SCALE_ENV}={raw!r} must be a positive number, e.g. 60.")
    return scale
