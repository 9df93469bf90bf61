"""The ChannelAdvisor HTTP client, built from small parts.

* :mod:`.session` — one ``requests.Session`` and timeouts (:class:`HttpClient`);
* :mod:`.retry` — the one retry engine, for plain requests, the token refresh and batch parts;
* :mod:`.auth` — the authenticator that owns the tokens;
* :mod:`.paging` — the ``@odata.nextLink`` paginator;
* :mod:`.batch` — the ``$batch`` batcher;
* :mod:`.limiter` — the per-profile rate and per-application concurrency limits;
* :mod:`.outcomes` — the table classifying every HTTP outcome, and the backoff;
* :mod:`.api` — the typed ChannelAdvisor calls (:class:`ChannelAdvisorClient`).
"""

from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.auth import Authenticator
from hub_channeladvisor.client.batch import Batcher, BatchPart, PartResult
from hub_channeladvisor.client.limiter import Limiter, limiter_for
from hub_channeladvisor.client.outcomes import Action, BackoffPolicy, Resolution
from hub_channeladvisor.client.paging import NextLinkPaginator
from hub_channeladvisor.client.session import ApiResult, HttpClient, Timeouts

__all__ = [
    "Action",
    "ApiResult",
    "Authenticator",
    "BackoffPolicy",
    "BatchPart",
    "Batcher",
    "ChannelAdvisorClient",
    "HttpClient",
    "Limiter",
    "NextLinkPaginator",
    "PartResult",
    "Resolution",
    "Timeouts",
    "limiter_for",
]
