"""Redaction of messages and log lines, through :func:`hub_core.errors.redact`.

``redact`` masks every ``refresh_token=<value>``-looking text, placeholders included, so the
hub's own instructions (``--set refresh_token=... --set access_token=...``) would read
``--set refresh_token=***``. Those fixed hints carry no secret: they are kept out of the
pattern matching, and every other part of the text goes through ``redact`` with the
connection's secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hub_core.errors import redact

#: Instructions the hub writes itself; ``...`` is a placeholder, never a value.
HINTS: tuple[str, ...] = (
    "--set refresh_token=... --set access_token=...",
    "--set access_token=...",
    "--set refresh_token=...",
    "--set shared_secret=...",
)
_SPLIT = re.compile("(" + "|".join(re.escape(h) for h in HINTS) + ")")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret masked, the hub's own ``--set key=...`` hints kept."""
    values = [s for s in secrets if s]
    pieces = _SPLIT.split(text)
    # Odd pieces are the hints the split kept; the secret values are masked there too.
    return "".join(
        _literal(piece, values) if index % 2 else redact(piece, values)
        for index, piece in enumerate(pieces)
    )


def _literal(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
