"""The paginator: follows ``@odata.nextLink`` until it is absent or repeats (reference §2.5).

ChannelAdvisor decides page sizes itself; the hub never computes ``$skip``. A link seen before
ends the paging (ChannelAdvisor has been seen answering a page past the end with the first page
again). A link to another host or scheme is never followed, nor rewritten: the paging stops
with :class:`~hub_channeladvisor.client.answers.ForeignUrl` naming the host, so no request and
no token leaves the configured base URL (design §6).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

from hub_channeladvisor.client.answers import MalformedAnswer, check_same_origin, describe_body
from hub_core.crash import crash_point

log = logging.getLogger(__name__)


class NextLinkPaginator:
    """The state of one paged read.

    :param first_url: the absolute URL of the first page.
    """

    def __init__(self, first_url: str) -> None:
        self.current_url: str | None = first_url
        self._first_url = first_url
        self._seen: set[str] = {first_url}
        self.pages = 0
        self.repeated: str | None = None

    @property
    def finished(self) -> bool:
        """Whether there is no page left to read."""
        return self.current_url is None

    def advance(self, page: Any) -> None:
        """Move to the page after ``page`` (a parsed collection answer)."""
        self.pages += 1
        link = page.get("@odata.nextLink") if isinstance(page, dict) else None
        if not link:
            self.current_url = None
            return
        if not isinstance(link, str):
            raise MalformedAnswer(
                f"ChannelAdvisor sent a next-page link that is {describe_body(link)}, not a URL; "
                f"the hub stopped after {self.pages} pages."
            )
        link = urljoin(self.current_url or "", link)
        check_same_origin(link, self._first_url, "a next-page link (@odata.nextLink)")
        if link in self._seen:
            # A page already read: reading on would loop forever.
            log.warning(
                "ChannelAdvisor repeated a next-page link after %d pages; stopped", self.pages
            )
            self.repeated = link
            self.current_url = None
            return
        self._seen.add(link)
        self.current_url = link


def iter_pages(get_json: Callable[[str], Any], first_url: str) -> Iterator[dict[str, Any]]:
    """Yield every page of a collection, first to last.

    :param get_json: reads one URL and returns its JSON (None for a 404, which ends paging).
    """
    paginator = NextLinkPaginator(first_url)
    while not paginator.finished:
        assert paginator.current_url is not None
        page = get_json(paginator.current_url)
        if page is None:
            return
        if not isinstance(page, dict):
            raise MalformedAnswer(
                f"ChannelAdvisor answered a page of a list with {describe_body(page)}, not an "
                "object with a 'value' list."
            )
        yield page
        crash_point("channeladvisor.page")
        paginator.advance(page)
