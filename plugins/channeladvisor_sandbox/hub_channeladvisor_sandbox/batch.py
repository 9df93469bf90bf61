"""`POST /v1/$batch`: parsing the multipart/mixed request and rendering the answer.

Request (reference §6): `Content-Type: multipart/mixed; boundary=...`; each part carries
`Content-Type: application/http`, `Content-Transfer-Encoding: binary`, `Content-ID: n` and
the raw inner request with an ABSOLUTE URL (`GET https://host/v1/Products?... HTTP/1.1`),
optional headers and a JSON body. CRLF and bare LF line breaks are both accepted. A nested
`multipart/mixed` part (an OData changeset) is flattened into its requests.

Answer: with `Accept: application/json` the JSON batch format
`{"responses": [{"id", "status", "headers", "body"}]}` (`body` is null for 204); without
it a multipart/mixed answer (reference: "presumably", UNCERTAIN). Failures of single parts
stay inside a 200 envelope. More parts than the limit (100) fail the whole batch with 400
before any part runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from werkzeug.http import parse_options_header

from .api import ApiResponse
from .errors import ApiError


@dataclass
class BatchPart:
    """One inner request of a batch (or the reason it could not be read)."""

    content_id: str
    method: str = ""
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


def boundary_of(content_type: str) -> str:
    """The boundary of a multipart/mixed Content-Type, else ApiError 400."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary")
    if mimetype.lower() != "multipart/mixed" or not boundary:
        raise ApiError(
            400,
            "A batch request must have a 'Content-Type' header of 'multipart/mixed' "
            "with a boundary.",
        )
    return boundary


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.split(b"\n"):
        marker = line.rstrip()
        if marker == delimiter:
            if current is not None:
                parts.append(b"\n".join(current))
            current = []
            continue
        if marker == delimiter + b"--":
            if current is not None:
                parts.append(b"\n".join(current))
            current = None
            break
        if current is not None:
            current.append(line)
    if current:
        parts.append(b"\n".join(current))
    # The line break before a delimiter belongs to the delimiter.
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]


def _split_head(raw: bytes) -> tuple[list[str], bytes]:
    """Header lines and the rest, split at the first empty line."""
    candidates = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    if not candidates:
        head, rest = raw, b""
    else:
        cut = min(candidates)
        sep = 4 if raw[cut : cut + 4] == b"\r\n\r\n" else 2
        head, rest = raw[:cut], raw[cut + sep :]
    lines = [line.rstrip("\r") for line in head.decode("utf-8", "replace").split("\n")]
    return [line for line in lines if line.strip()], rest


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parse_part(raw: bytes, index: int) -> list[BatchPart]:
    head, content = _split_head(raw)
    headers = _headers(head)
    content_id = headers.get("content-id", str(index))
    content_type = headers.get("content-type", "")
    if content_type.lower().startswith("multipart/mixed"):
        return parse_batch(content_type, content)
    if not content_type.lower().startswith("application/http"):
        return [
            BatchPart(content_id, error="Each batch part needs 'Content-Type: application/http'.")
        ]
    request_head, body = _split_head(content)
    if not request_head:
        return [BatchPart(content_id, error="The batch part holds no request line.")]
    words = request_head[0].split()
    if len(words) >= 3 and words[-1].upper().startswith("HTTP/"):
        method, url = words[0], " ".join(words[1:-1])
    elif len(words) >= 2:
        method, url = words[0], " ".join(words[1:])
    else:
        return [BatchPart(content_id, error=f"Bad request line '{request_head[0]}'.")]
    inner_headers = _headers(request_head[1:])
    return [BatchPart(content_id, method.upper(), url, inner_headers, body.strip(b"\r\n"))]


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    """The inner requests of a batch body (malformed parts carry `error`)."""
    boundary = boundary_of(content_type)
    parts: list[BatchPart] = []
    for index, raw in enumerate(_split_parts(body, boundary), 1):
        parts.extend(_parse_part(raw, index))
    return parts


def _body_value(response: ApiResponse) -> Any:
    if response.body is None or response.status == 204:
        return None
    if isinstance(response.body, bytes):
        return response.body.decode("utf-8", "replace")
    return response.body


def json_envelope(results: list[tuple[str, ApiResponse]]) -> dict[str, Any]:
    """The JSON batch format."""
    return {
        "responses": [
            {
                "id": content_id,
                "status": response.status,
                "headers": {k.lower(): v for k, v in response.headers.items()},
                "body": _body_value(response),
            }
            for content_id, response in results
        ]
    }


def multipart_envelope(results: list[tuple[str, ApiResponse]]) -> tuple[str, bytes]:
    """The multipart/mixed batch answer: (Content-Type, body)."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for content_id, response in results:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {content_id}",
            "",
            f"HTTP/1.1 {response.status} {phrase}".rstrip(),
            *(f"{k}: {v}" for k, v in response.headers.items()),
            "",
        ]
        chunks.append("\r\n".join(lines).encode() + b"\r\n" + response.content_bytes() + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)
