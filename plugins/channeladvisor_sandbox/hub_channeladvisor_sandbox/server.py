"""The WSGI application and the threaded HTTP server around it.

Every `/v1` request goes through the same pipeline, in this order:

1. authentication (Bearer header, else `?access_token=`) -> 401 OData error;
2. the in-flight limit of the token's application -> 429;
3. the rate limit of the attributed profile (see `api`) -> 429 with Retry-After;
4. latency (fixed + seeded jitter);
5. injected faults (see `faults`);
6. the handler (for `$batch`: parts run one after another through steps 3, 5 and 6);
7. persistence of changed rows (with a state file) and the request log (with the request's
   JSON body: each batch part logs its own).

A batch part that cannot be read (no `application/http`, a relative URL) is answered 400
inside the envelope without spending budget; every other part spends one unit.

`POST /oauth2/token` gets latency, faults and the log, but no limits. `/_sandbox/...` is the
admin surface: no auth, no limits, not logged.
"""

from __future__ import annotations

import html
import json
import math
import re
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import batch as batch_mod
from .admin import AdminApi
from .api import Api, ApiRequest, ApiResponse, error_response, json_response, not_routed
from .auth import Principal
from .constants import AUTH_DENIED_MESSAGE
from .errors import ApiError
from .faults import INSTEAD_KINDS, SPOIL_KINDS, STATUS_KINDS, FaultRule
from .limits import retry_after_seconds
from .reqlog import LogEntry, endpoint_of
from .sandbox import SandboxCore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


_TOKEN_ERRORS = {
    "invalid_client": "The application id or the shared secret is not valid.",
    "invalid_grant": "The refresh token is not valid, or was revoked.",
}
_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&]*")


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Suppressed: the sandbox keeps its own request log."""


class _Drop(Exception):
    """Close the connection without answering (faults `reset` and `lost_response`)."""


def _drop_connection(environ: WSGIEnvironment) -> None:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            # Linger 0: closing sends RST; shutdown makes werkzeug stop reading at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    # Werkzeug treats ConnectionError as "client went away" and writes nothing.
    raise ConnectionAbortedError("sandbox fault: connection dropped")


def _to_response(api_response: ApiResponse) -> Response:
    response = Response(api_response.content_bytes(), status=api_response.status)
    for name, value in api_response.headers.items():
        response.headers[name] = value
    if api_response.status == 204 or not api_response.content_bytes():
        response.headers.pop("Content-Type", None)
    return response


def _fault_error(rule: FaultRule, retry_after: bool, method: str, path: str) -> ApiError:
    """The answer of a status fault, in the shape the real service uses for that status."""
    message = rule.message
    if rule.kind == "401":
        headers = {"WWW-Authenticate": "Bearer"}
        return ApiError(401, message or AUTH_DENIED_MESSAGE, headers=headers)
    if rule.kind == "429":
        headers = {"Retry-After": "1"} if retry_after else {}
        return ApiError(429, message or "Too Many Requests", shape="message", headers=headers)
    if rule.kind == "503":
        return ApiError(503, message or "Service Unavailable", shape="text")
    if rule.kind in ("400", "404"):
        # Entity-level refusals come as the OData error object (reference §7).
        default = f"Sandbox fault {rule.kind} injected into {method} {path}."
        return ApiError(int(rule.kind), message or default)
    return ApiError(500, message or "An error has occurred.", shape="message")


def _instead(rule: FaultRule, path: str, query: str) -> ApiResponse:
    """The answer of an `html` or `redirect` fault, sent instead of carrying the request out."""
    if rule.kind == "html":
        status = rule.status or 502
        title = html.escape(f"{status} Bad Gateway" if status == 502 else f"{status} Error")
        page = (
            f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
            f"<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>\n"
        )
        return ApiResponse(status, page, {"Content-Type": "text/html; charset=utf-8"})
    location = rule.target_origin + path + (f"?{query}" if query else "")
    return ApiResponse(rule.status or 302, "", {"Location": location})


def _spoil(rule: FaultRule, response: ApiResponse, url: str) -> ApiResponse:
    """The answer of an `invalid_json`, `wrong_types` or `foreign_next_link` fault."""
    body = response.body
    headers = dict(response.headers)
    if rule.kind == "invalid_json":
        text = json.dumps(body) if isinstance(body, dict | list) else '{"value": ['
        headers["Content-Type"] = "application/json; charset=utf-8"
        return ApiResponse(200, text[: max(1, len(text) // 2)].encode(), headers)
    if not isinstance(body, dict | list):
        return response
    if rule.kind == "wrong_types":
        return ApiResponse(response.status, _wrong_types(body), headers)
    link = body.get("@odata.nextLink") if isinstance(body, dict) else None
    parts = urlsplit(str(link or url))
    foreign = rule.target_origin + parts.path + (f"?{parts.query}" if parts.query else "")
    return ApiResponse(response.status, {**body, "@odata.nextLink": foreign}, headers)


def _wrong_types(value: Any) -> Any:
    """A JSON answer with its IDs, quantities, SKUs and count of the wrong type."""
    if isinstance(value, list):
        return [_wrong_types(item) for item in value]
    if not isinstance(value, dict):
        return value
    spoiled: dict[str, Any] = {}
    for key, item in value.items():
        if key == "ID":
            spoiled[key] = f"ID-{item}"
        elif key == "Quantity":
            spoiled[key] = "lots"
        elif key == "Sku":
            spoiled[key] = 12345
        elif key == "@odata.count":
            spoiled[key] = "many"
        else:
            spoiled[key] = _wrong_types(item)
    return spoiled


class SandboxApp:
    """The WSGI callable serving one sandbox."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self.sb = sandbox
        self.api = Api(sandbox.store, sandbox)
        self.admin = AdminApi(sandbox)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        path = request.path
        if path.startswith("/_sandbox"):
            response = self.admin.handle(request)
        elif path == "/oauth2/token":
            response = self._token(request)
        elif path.startswith("/v1/"):
            response = self._api(request)
        else:
            response = _to_response(error_response(not_routed(request.url)))
        return response(environ, start_response)

    # -- shared steps ----------------------------------------------------------------------
    def _log(self, seq: int | None = None, **fields: Any) -> int:
        log = self.sb.log
        seq = seq if seq is not None else log.next_seq()
        fields.setdefault("profile_id", None)
        fields.setdefault("application_id", None)
        fields.setdefault("in_batch", False)
        fields.setdefault("batch_seq", None)
        fields.setdefault("units", 0)
        fields.setdefault("throttled", None)
        fields.setdefault("fault", None)
        fields.setdefault("applied", False)
        # The raw body becomes `body` (parsed, if the log keeps it) and `body_size`.
        raw_body = fields.pop("raw_body", None)
        if raw_body is not None:
            fields["body_size"] = len(raw_body)
            fields["body"] = log.parse_body(raw_body)
        fields["endpoint"] = endpoint_of(fields["method"], fields["path"])
        # Tokens sent in the query string do not belong in a log that tests print.
        fields["query"] = _TOKEN_IN_QUERY.sub(r"\1***", fields["query"])
        log.record(LogEntry(seq=seq, time=time.time(), **fields))
        return seq

    def _too_many(self, wait: float) -> ApiError:
        headers = {"Retry-After": retry_after_seconds(wait)} if self.sb.retry_after else {}
        return ApiError(429, "Too Many Requests", shape="message", headers=headers)

    @staticmethod
    def _guarded(handler: Callable[[], ApiResponse]) -> ApiResponse:
        """Run a handler; a bug in the sandbox becomes a logged 500, like a server error."""
        try:
            return handler()
        except Exception:
            traceback.print_exc()
            return error_response(ApiError(500, "An error has occurred.", shape="message"))

    def _hold(self, seconds: float) -> None:
        """Sleep, but wake up at once when the sandbox stops."""
        if seconds > 0:
            self.sb._stop_event.wait(seconds)

    # -- token endpoint ----------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        sb = self.sb
        method, path = request.method, request.path
        query = request.query_string.decode("latin-1")
        # Size only: the form carries the refresh token, which a log must not hold.
        size = request.content_length or 0
        # Read the form before any fault: left in the connection's buffer by a dropped
        # connection, it was parsed as a next request and logged, refresh token included.
        request.get_data(cache=True)
        base = {"method": method, "path": path, "query": query, "body_size": size}
        self._hold(sb.next_latency())
        fault = sb.fault_injector.pick(method, path, in_batch=False)
        if fault is not None and fault.kind in STATUS_KINDS:
            self._log(**base, status=int(fault.kind), fault=fault.kind)
            error = _fault_error(fault, sb.retry_after, method, path)
            return _to_response(error_response(error))
        if fault is not None and fault.kind == "reset":
            self._log(**base, status=0, fault=fault.kind)
            _drop_connection(request.environ)
        if fault is not None and fault.kind in INSTEAD_KINDS:
            answer = _instead(fault, path, query)
            self._log(**base, status=answer.status, fault=fault.kind)
            return _to_response(answer)
        app_id, api_response = self._exchange(request)
        if fault is not None and fault.kind in SPOIL_KINDS:
            api_response = _spoil(fault, api_response, request.url)
        self._log(
            **base,
            status=api_response.status,
            application_id=app_id,
            applied=True,
            fault=fault.kind if fault else None,
        )
        if fault is not None and fault.kind == "lost_response":
            _drop_connection(request.environ)
        if fault is not None and fault.kind == "timeout":
            self._hold(fault.delay_s)
        return _to_response(api_response)

    def _exchange(self, request: Request) -> tuple[str | None, ApiResponse]:
        if request.method != "POST":
            error = ApiError(
                405,
                f"The requested resource does not support http method '{request.method}'.",
                shape="message",
            )
            return None, error_response(error)
        bad = error_response(ApiError(400, "Bad Request", shape="text"))
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username:
            return None, bad
        app_id = auth.username
        grant_type = request.form.get("grant_type")
        if grant_type != "refresh_token":
            body = {"error": "unsupported_grant_type"}
            return app_id, ApiResponse(400, body, {"Content-Type": "application/json"})
        refresh_token = request.form.get("refresh_token") or ""
        ttl = float(self.sb.token_ttl)
        token = self.sb.credentials.exchange(app_id, auth.password or "", refresh_token, ttl)
        if isinstance(token, str):
            if self.sb.token_errors == "text":
                # CA has answered a bare plain-text 400 here (reference §1, SV a8b73af).
                return app_id, bad
            body = {"error": token, "error_description": _TOKEN_ERRORS[token]}
            return app_id, ApiResponse(400, body, {"Content-Type": "application/json"})
        body = {
            "access_token": token.token,
            "token_type": "bearer",
            "expires_in": max(1, math.ceil(ttl)),
        }
        return app_id, ApiResponse(
            200,
            body,
            {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"},
        )

    # -- /v1 ------------------------------------------------------------------------------
    def _api(self, request: Request) -> Response:
        sb = self.sb
        method, path = request.method.upper(), request.path
        query = request.query_string.decode("latin-1")
        base = {"method": method, "path": path, "query": query, "raw_body": request.get_data()}
        header = request.headers.get("Authorization", "")
        token_in_query = None
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        else:
            token = request.args.get("access_token")
            token_in_query = token
        principal = sb.credentials.authenticate(token)
        if principal is None:
            self._log(**base, status=401)
            error = ApiError(401, AUTH_DENIED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
            return _to_response(error_response(error))
        app_id = principal.application_id
        if not sb.in_flight.try_enter(app_id, int(sb.max_in_flight)):
            self._log(
                **base,
                status=429,
                application_id=app_id,
                throttled="in_flight",
                profile_id=principal.primary_profile,
            )
            return _to_response(error_response(self._too_many(1.0)))
        try:
            req = ApiRequest(
                method=method,
                path=path,
                args=_first_values(request.args),
                headers=request.headers,
                body=request.get_data(),
                base_url=request.host_url.rstrip("/"),
                principal=principal,
                token_in_query=token_in_query,
            )
            return self._admitted(request, req, base)
        finally:
            sb.in_flight.leave(app_id)

    def _admitted(self, request: Request, req: ApiRequest, base: dict[str, Any]) -> Response:
        sb = self.sb
        principal = req.principal
        route = None
        route_error = None
        try:
            route = self.api.match(req.method, req.path)
        except ApiError as exc:
            route_error = exc
        profile = self.api.attribute(req, route)
        who = {"application_id": principal.application_id, "profile_id": profile}
        ok, wait = sb.rate_limiter.try_acquire(
            profile, 1, int(sb.rate_limit_per_minute), float(sb.rate_window_seconds)
        )
        if not ok:
            self._log(**base, **who, status=429, throttled="rate")
            return _to_response(error_response(self._too_many(wait)))
        self._hold(sb.next_latency())
        seq = sb.log.next_seq()
        fault = sb.fault_injector.pick(req.method, req.path, in_batch=False)
        if fault is not None and fault.kind in STATUS_KINDS:
            self._log(seq, **base, **who, units=1, status=int(fault.kind), fault=fault.kind)
            error = _fault_error(fault, sb.retry_after, req.method, req.path)
            return _to_response(error_response(error))
        if fault is not None and fault.kind == "reset":
            self._log(seq, **base, **who, units=1, status=0, fault=fault.kind)
            _drop_connection(request.environ)
        if fault is not None and fault.kind in INSTEAD_KINDS:
            answer = _instead(fault, req.path, base["query"])
            self._log(seq, **base, **who, units=1, status=answer.status, fault=fault.kind)
            return _to_response(answer)
        if route_error is not None:
            api_response = error_response(route_error)
        elif route is not None and route.kind == "batch":
            api_response = self._guarded(lambda: self._batch(req, seq))
        else:
            assert route is not None
            found = route
            api_response = self._guarded(lambda: self.api.handle(req, found))
        if self.api.is_write(req.method):
            sb.persist()
        if fault is not None and fault.kind in SPOIL_KINDS:
            api_response = _spoil(fault, api_response, request.url)
        fault_kind = fault.kind if fault else None
        if fault is not None and fault.kind == "lost_response":
            self._log(seq, **base, **who, units=1, status=0, fault=fault_kind, applied=True)
            _drop_connection(request.environ)
        self._log(
            seq,
            **base,
            **who,
            units=1,
            status=api_response.status,
            fault=fault_kind,
            applied=route_error is None,
        )
        if fault is not None and fault.kind == "timeout":
            self._hold(fault.delay_s)
        return _to_response(api_response)

    # -- $batch ------------------------------------------------------------------------------
    def _batch(self, req: ApiRequest, batch_seq: int) -> ApiResponse:
        try:
            parts = batch_mod.parse_batch(req.headers.get("Content-Type", ""), req.body)
        except ApiError as exc:
            return error_response(exc)
        limit = int(self.sb.max_batch_parts)
        if len(parts) > limit:
            return error_response(
                ApiError(
                    400,
                    f"A batch request may hold at most {limit} requests; this one has "
                    f"{len(parts)}.",
                )
            )
        results = [(part.content_id, self._part(req, part, batch_seq)) for part in parts]
        if "application/json" in req.headers.get("Accept", "").lower():
            return json_response(batch_mod.json_envelope(results))
        content_type, body = batch_mod.multipart_envelope(results)
        return ApiResponse(200, body, {"Content-Type": content_type, "OData-Version": "4.0"})

    def _part(self, outer: ApiRequest, part: batch_mod.BatchPart, batch_seq: int) -> ApiResponse:
        sb = self.sb
        principal: Principal = outer.principal
        url = urlsplit(part.url)
        path = url.path if url.scheme else part.url.split("?")[0]
        base = {
            "method": part.method or "?",
            "path": path or "?",
            "query": url.query,
            "in_batch": True,
            "batch_seq": batch_seq,
            "raw_body": part.body,
        }
        if part.error is not None or not (url.scheme and url.netloc):
            message = part.error or (f"Batch part URLs must be absolute (got '{part.url}').")
            self._log(
                **base,
                status=400,
                application_id=principal.application_id,
                profile_id=principal.primary_profile,
            )
            return error_response(ApiError(400, message))
        args = _first_values(parse_qsl(url.query, keep_blank_values=True))
        req = ApiRequest(
            method=part.method,
            path=url.path,
            args=args,
            headers=_CaseInsensitive(part.headers),
            body=part.body,
            base_url=f"{url.scheme}://{url.netloc}",
            principal=principal,
            token_in_query=args.get("access_token") or None,
            in_batch=True,
        )
        route = None
        route_error = None
        try:
            route = self.api.match(req.method, req.path)
            if route.kind == "batch":
                raise ApiError(400, "A batch request cannot contain another batch.")
        except ApiError as exc:
            route_error = exc
        profile = self.api.attribute(req, route)
        who = {"application_id": principal.application_id, "profile_id": profile}
        ok, wait = sb.rate_limiter.try_acquire(
            profile, 1, int(sb.rate_limit_per_minute), float(sb.rate_window_seconds)
        )
        if not ok:
            self._log(**base, **who, status=429, throttled="rate")
            return error_response(self._too_many(wait))
        fault = sb.fault_injector.pick(req.method, req.path, in_batch=True)
        if fault is not None and fault.kind in STATUS_KINDS:
            self._log(**base, **who, units=1, status=int(fault.kind), fault=fault.kind)
            return error_response(_fault_error(fault, sb.retry_after, req.method, req.path))
        if route_error is not None or route is None:
            response = error_response(route_error or not_routed(req.path))
        else:
            found = route
            response = self._guarded(lambda: self.api.handle(req, found))
        if fault is not None:
            response = _spoil(fault, response, part.url)
        self._log(
            **base,
            **who,
            units=1,
            status=response.status,
            applied=route_error is None,
            fault=fault.kind if fault else None,
        )
        return response


def _first_values(args: Any) -> dict[str, str]:
    """Query options as a plain dict (first value of each), keeping their order.

    `args` is a werkzeug MultiDict or a list of (key, value) pairs.
    """
    pairs = args.items(multi=True) if hasattr(args, "items") else args
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


class _CaseInsensitive(dict[str, str]):
    """Batch-part headers: stored lower-case, looked up in any case."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class Sandbox(SandboxCore):
    """The sandbox that serves itself over HTTP: ``with Sandbox(seed=1) as sb:`` starts it on a
    free port (see :class:`~.sandbox.SandboxCore` for the settings and the Python admin API)."""

    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL (e.g. http://127.0.0.1:5123)."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._stop_event.clear()
        server = make_server(
            host, port, SandboxApp(self), threaded=True, request_handler=QuietRequestHandler
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ca-sandbox-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        self.url = f"http://{shown}:{server.server_port}"
        return self.url

    @property
    def base_url(self) -> str:
        """The URL `start` returned (error if not started)."""
        if self.url is None:
            raise RuntimeError("the sandbox is not running")
        return self.url

    def stop(self) -> None:
        """Stop serving (requests held by latency or faults are released) and save."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop_event.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self.url = None
        self.persist()

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def close(self) -> None:
        """Stop serving and close the state file."""
        self.stop()
        super().close()
