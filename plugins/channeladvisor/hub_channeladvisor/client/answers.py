"""Reading ChannelAdvisor's answers defensively: shapes, types, and where links point.

An answer the hub cannot use (not JSON, an HTML error page, a collection without its
``value`` list, an ID that is not a number, a next link or redirect to another host) raises
:class:`MalformedAnswer` or :class:`ForeignUrl`, both :class:`~hub_core.errors.ChannelError`:
the operation stops with a message saying what ChannelAdvisor sent, and nothing is guessed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from hub_core.errors import ChannelError
from hub_core.values import parse_quantity

#: The largest answer read (ChannelAdvisor's pages and batches are far smaller): a larger
#: one is refused before it can fill the memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: The most rows a page may hold (ChannelAdvisor sends at most 100).
MAX_PAGE_ROWS = 10_000
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


class MalformedAnswer(ChannelError):
    """ChannelAdvisor answered something the hub cannot read (exit 1)."""


class ForeignUrl(ChannelError):
    """ChannelAdvisor pointed the hub at another host or scheme, which it never follows."""


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(url: str, base_url: str, what: str) -> None:
    """Refuse a URL (a next link, a redirect's target) outside the configured base URL.

    :raises ForeignUrl: naming the foreign host; no request is sent to it, so the token
        never leaves the configured base URL.
    """
    if origin(url) == origin(base_url):
        return
    target = urlsplit(url)
    host = target.netloc or "(no host)"
    scheme = f" over {target.scheme}" if target.scheme else ""
    raise ForeignUrl(
        f"ChannelAdvisor's answer pointed to another host: {what} to {host}{scheme}, outside "
        f"the connection's base URL {origin(base_url)}. The hub did not follow it (requests "
        "and tokens go only to the base URL); the operation stopped. If the base URL is "
        "wrong, fix it with 'hub connections configure NAME --set base_url=...'."
    )


def refuse_redirect(response: requests.Response, url: str, base_url: str) -> None:
    """Stop at a redirect instead of following it (design §6).

    :raises ForeignUrl: the redirect points outside ``base_url`` (named in the message).
    :raises MalformedAnswer: it points inside; ChannelAdvisor's API does not redirect, so the
        base URL is probably wrong.
    """
    if not response.is_redirect:
        return
    target = urljoin(url, response.headers.get("Location", ""))
    response.close()
    what = f"a redirect (HTTP {response.status_code})"
    check_same_origin(target, base_url, what)
    raise MalformedAnswer(
        f"ChannelAdvisor answered with {what} to {urlsplit(target).path}, which the hub does "
        "not follow; check the connection's base_url."
    )


def read_capped(response: requests.Response, limit: int | None = None) -> None:
    """Read a streamed answer's body, refusing one larger than ``limit`` bytes.

    :raises MalformedAnswer: the answer declares or turns out to be larger than the limit.
    """
    limit = MAX_ANSWER_BYTES if limit is None else limit
    declared = response.headers.get("Content-Length", "")
    too_big = declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = []
    total = 0
    if not too_big:
        for chunk in response.iter_content(chunk_size=256 * 1024):
            total += len(chunk)
            if total > limit:
                too_big = True
                break
            chunks.append(chunk)
    if too_big:
        response.close()
        raise MalformedAnswer(
            f"ChannelAdvisor's answer is larger than {limit:,} bytes (HTTP "
            f"{response.status_code}); the hub did not read it. Try again later."
        )
    # requests keeps a read body here; .content and .json() then work as without streaming.
    response._content = b"".join(chunks)


def parse_body(response: requests.Response) -> Any:
    """The answer's JSON, its text when it is not JSON, or None when empty."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def describe_body(body: Any) -> str:
    """A short description of an answer for messages (an HTML page is named by its title)."""
    if body is None:
        return "an empty answer"
    if isinstance(body, str):
        text = body.strip()
        if text[:1] == "<":
            title = _TITLE.search(text)
            words = (title.group(1) if title else _TAGS.sub(" ", text)).split()
            summary = html.unescape(" ".join(words))[:80]
            return f"an HTML page ({summary!r})" if summary else "an HTML page"
        return f"text that is not JSON ({text[:80]!r})"
    kind = {dict: "an object", list: "a list"}.get(type(body), type(body).__name__)
    return f"JSON {kind}"


def is_html(body: Any) -> bool:
    """Whether a text answer is an HTML page (a proxy's or load balancer's error page)."""
    return isinstance(body, str) and body.lstrip()[:1] == "<"


def collection(body: Any, what: str) -> list[dict[str, Any]]:
    """The ``value`` rows of a collection answer.

    :raises MalformedAnswer: the answer is not an object with a ``value`` list of objects.
    """
    if not isinstance(body, Mapping):
        raise MalformedAnswer(
            f"ChannelAdvisor answered {what} with {describe_body(body)}, not the JSON list "
            "the hub asked for. Try again later; if it persists, ChannelAdvisor's API is "
            "not answering normally."
        )
    value = body.get("value")
    if isinstance(value, list) and len(value) > MAX_PAGE_ROWS:
        raise MalformedAnswer(
            f"ChannelAdvisor answered {what} with a page of {len(value):,} rows (pages hold "
            f"100); the hub refuses pages of more than {MAX_PAGE_ROWS:,}."
        )
    if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
        raise MalformedAnswer(
            f"ChannelAdvisor answered {what} without a readable 'value' list "
            f"(got {describe_body(value)}); nothing was taken from that answer."
        )
    return [dict(row) for row in value]


def entity_id(value: Any, what: str) -> int:
    """A ChannelAdvisor ID (a positive integer, as a number or digits).

    :raises MalformedAnswer: naming ``what`` and the value received.
    """
    if isinstance(value, bool) or value is None:
        valid = False
    elif isinstance(value, int):
        valid = value > 0
    else:
        valid = isinstance(value, str) and value.isdigit() and len(value) <= 19
    if not valid:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise MalformedAnswer(
            f"ChannelAdvisor sent {what} whose ID is {shown}, not a number; the hub cannot use it."
        )
    return int(value)


def whole_number(value: Any, what: str) -> int:
    """A quantity from ChannelAdvisor (0 to 2,147,483,647).

    :raises MalformedAnswer: naming ``what`` and why.
    """
    try:
        return parse_quantity(value)
    except ValueError as exc:
        raise MalformedAnswer(f"ChannelAdvisor sent {what} whose quantity {exc}.") from None


def optional_count(value: Any) -> int | None:
    """``@odata.count``: a whole number, or None when absent or unreadable."""
    try:
        return parse_quantity(value) if value is not None else None
    except ValueError:
        return None
