"""Secrets out of everything the hub shows or keeps: one :class:`Redactor`, used at the boundaries.

A redactor knows secret values (a connection's, from its schema's secret fields and the
environment variables its channel declares; and whatever a plugin adds while it works, such as
a refreshed token) and masks them, plus anything that looks like a credential (``token=...``,
``Authorization: Bearer ...``), in text on its way out. Nothing inside the hub or a plugin
redacts: the boundaries do, once —

- exception text, as an error leaves a plugin's hook call (:meth:`Registry.call
  <hub_core.plugins.Registry.call>`) and as the CLI turns it into a message;
- run records, as the run recorder stores records, run messages, listing and shipment errors;
- CLI output, text and ``--json``, in the one function that prints;
- logs: every log record made while a redactor is active (:func:`install_log_filter`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

MASK = "***"
#: Shorter values are not masked: they would mask ordinary words and numbers.
MIN_SECRET_LENGTH = 4

# Values that look like credentials, in key=value, JSON, header or query form.
_KEY_VALUE = re.compile(
    r"(?i)((?:access|refresh)_?token|shared_?secret|client_secret|password|secret)"
    r"([\"']?\s*[:=]\s*[\"']?)([^\"'&\s,}]+)"
)
_AUTH_HEADER = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)\s+)([^\"'\s,}]+)"
)
#: Values that are placeholders in the hub's own instructions, never credentials.
_PLACEHOLDERS = {"...", MASK, "…", "VALUE"}


def _mask_value(match: re.Match[str]) -> str:
    if match.group(3) in _PLACEHOLDERS:
        return match.group(0)
    return match.group(1) + match.group(2) + MASK


def _mask(text: str, values: Iterable[str]) -> str:
    for secret in values:
        text = text.replace(secret, MASK)
    text = _KEY_VALUE.sub(_mask_value, text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)


class Redactor:
    """Knows secret values and masks them in text, documents, exceptions and log records.

    Values are given (:meth:`add`) or followed (:meth:`follow`: a callable asked each time, so
    a token refreshed during a run is masked too). :meth:`include` makes one redactor know
    another's secrets, as the hub's does for every connection it opens.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._sources: dict[object, Callable[[], Iterable[str]]] = {}
        self._lock = threading.Lock()
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Know these values as secrets (empty and very short ones are ignored)."""
        with self._lock:
            self._values.update(str(v) for v in values if v and len(str(v)) >= MIN_SECRET_LENGTH)

    def follow(self, source: Callable[[], Iterable[str]], *, key: object = None) -> None:
        """Ask ``source`` for secret values every time this redactor masks something.

        :param key: a source followed under the same key replaces the earlier one (a hub that
            opens the same connection again keeps one source for it, not one per opening).
        """
        with self._lock:
            self._sources[key if key is not None else id(source)] = source

    def include(self, other: Redactor, *, key: object = None) -> None:
        """Know every secret ``other`` knows, now and later (``key``: see :meth:`follow`)."""
        if other is not self:
            self.follow(other.values, key=key)

    def values(self) -> list[str]:
        """Every secret value known now, longest first (a secret inside another goes whole)."""
        with self._lock:
            found = set(self._values)
            sources = list(self._sources.values())
        for source in sources:
            found.update(str(v) for v in source() if v and len(str(v)) >= MIN_SECRET_LENGTH)
        return sorted(found, key=len, reverse=True)

    def text(self, text: str) -> str:
        """``text`` with every known secret and every credential-looking value masked."""
        return _mask(text, self.values())

    def data(self, value: Any) -> Any:
        """A copy of a JSON-like document with every string in it masked (keys included).

        Masked before it is serialized: a secret escaped by JSON (a quote, a non-ASCII letter)
        would no longer match in the serialized text.
        """
        values = self.values()  # once for the document, not once per string

        def masked(item: Any) -> Any:
            if isinstance(item, str):
                return _mask(item, values)
            if isinstance(item, dict):
                return {masked(k): masked(v) for k, v in item.items()}
            if isinstance(item, list | tuple):
                return [masked(v) for v in item]
            return item

        return masked(value)

    def exception(self, exc: BaseException) -> BaseException:
        """Mask the exception's texts in place (``message`` and ``detail`` of a hub error, and
        its ``args``) before anything prints or stores them; returns it."""
        if hasattr(exc, "message") and isinstance(exc.message, str):
            exc.message = self.text(exc.message)
        if hasattr(exc, "detail") and isinstance(exc.detail, str):
            exc.detail = self.text(exc.detail)
        exc.args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
        return exc

    @contextlib.contextmanager
    def active(self) -> Iterator[Redactor]:
        """Make this the redactor of the current context: log records made inside are masked
        with it (see :func:`install_log_filter`), and :func:`current` returns it."""
        install_log_filter()
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


_CURRENT: contextvars.ContextVar[Redactor | None] = contextvars.ContextVar(
    "hub_redactor", default=None
)


def current() -> Redactor:
    """The active redactor (:meth:`Redactor.active`), else one that knows no values and masks
    only credential-looking text."""
    return _CURRENT.get() or Redactor()


class RedactingFilter(logging.Filter):
    """A logging filter that masks a record's message (arguments merged) and traceback with
    the current context's redactor."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = current()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is handled
            return True
        record.msg = redactor.text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True


_installed = False
_install_lock = threading.Lock()


def install_log_filter() -> None:
    """Apply :class:`RedactingFilter` to every log record this process makes, once.

    A filter on one logger misses its children's records and a filter on one handler misses
    the other handlers (a test's capture, Celery's), so the filter runs as each record is
    made: every handler then sees only masked text.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        make = logging.getLogRecordFactory()
        redacting = RedactingFilter()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            redacting.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


__all__ = ["MASK", "RedactingFilter", "Redactor", "current", "install_log_filter"]
