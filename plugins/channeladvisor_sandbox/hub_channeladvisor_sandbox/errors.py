"""The one exception the sandbox's handlers raise to answer a client with an error.

ChannelAdvisor answers errors in three shapes (reference §7): the OData error object
`{"error": {"code": "", "message": ...}}`, an ASP.NET-style `{"Message": ...}` (routing
failures, 415, 429) and, on the token endpoint, plain text. `ApiError.shape` picks one.
"""

from __future__ import annotations

from typing import Literal

Shape = Literal["odata", "message", "text"]


class ApiError(Exception):
    """An HTTP error answer: status, message and the body shape to render it in."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        shape: Shape = "odata",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.shape: Shape = shape
        self.headers = dict(headers or {})


class AdminError(Exception):
    """A bad request to the admin surface or the Python admin API (answered as 400/404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
