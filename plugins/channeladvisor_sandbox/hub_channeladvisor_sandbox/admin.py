"""The admin surface under `/_sandbox/` (not part of ChannelAdvisor; no auth, not logged).

Every route maps onto a method of `Sandbox`, so in-process tests can use Python instead:

    GET    /_sandbox/health                  {"ok": true}
    GET    /_sandbox/state?include=a,b       whole state (include: products, orders,
                                             carriers, distribution_centers, profiles)
    POST   /_sandbox/reset                   drop products, orders, log, faults, budgets
    POST   /_sandbox/products                list of dicts | one dict | {"count": N,
                                             "profile_id", "sku_prefix", "start_index"}
    GET    /_sandbox/products/<id>           one product (admin view)
    DELETE /_sandbox/products/<id>           delete it (as a UI delete would)
    POST   /_sandbox/orders                  list | one dict | {"count": N, "profile_id",
                                             "max_items", "big_orders", "days",
                                             "exported_by"}
    GET    /_sandbox/orders/<id>             one order with items, fulfillments, flags
    POST   /_sandbox/orders/<id>/cancel      cancel it (ShippingStatus Canceled), as the
                                             marketplace would after the hub imported it
    GET    /_sandbox/carriers                carrier -> classes
    POST   /_sandbox/carriers                {"carriers": {...} | [...], "replace": bool}
    GET    /_sandbox/log?since=N&entries=0   request log and statistics
    POST   /_sandbox/log/reset               clear it
    GET    /_sandbox/config                  current settings
    POST   /_sandbox/config                  change any setting (JSON object)
    GET    /_sandbox/faults                  fault rules with counters
    POST   /_sandbox/faults                  {"rules": [...], "replace": true} | {"add": rule}
                                             | {"rates": {...}, "pattern": ...} | {"clear": true}
    DELETE /_sandbox/faults                  remove all rules
                                             (a rule: {"kind", "rate", "pattern", "method",
                                             "count", "delay_s", "scope", "message",
                                             "status", "target"}; kinds 500 503 429 401 400
                                             404 reset timeout lost_response, and the
                                             hostile answers html redirect invalid_json
                                             wrong_types foreign_next_link; see `faults`)
    POST   /_sandbox/tokens/expire           expire every access token now
    POST   /_sandbox/tokens/revoke           {"refresh_token": ...}
    POST   /_sandbox/tokens/issue            {"refresh_token"?} -> {"access_token": ...}
    GET    /_sandbox/credentials             applications, refresh tokens, live tokens
    POST   /_sandbox/applications            {"application_id", "shared_secret"}
    POST   /_sandbox/refresh_tokens          {"refresh_token", "application_id",
                                             "profile_ids"}

Errors answer `{"error": "..."}` with 400 (bad input), 404 or 405.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .errors import AdminError
from .faults import FaultConfig, FaultRule

if TYPE_CHECKING:
    from .sandbox import SandboxCore

Handler = Callable[[Request, Any, "re.Match[str]"], Any]


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


class AdminApi:
    """Routes `/_sandbox/...` requests to the Sandbox's admin methods."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self.sb = sandbox
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        add = self._add
        add("GET", r"/health", lambda r, b, m: {"ok": True, "url": self.sb.url})
        add("GET", r"/state", self._state)
        add("POST", r"/reset", lambda r, b, m: self.sb.reset() or {"ok": True})
        add("POST", r"/products", self._seed_products)
        add("GET", r"/products/(?P<id>\d+)", self._get_product)
        add("DELETE", r"/products/(?P<id>\d+)", self._delete_product)
        add("POST", r"/orders", self._seed_orders)
        add("GET", r"/orders/(?P<id>\d+)", self._get_order)
        add(
            "POST",
            r"/orders/(?P<id>\d+)/cancel",
            lambda r, b, m: self.sb.cancel_order(int(m["id"])),
        )
        add("GET", r"/carriers", lambda r, b, m: self.sb.carriers())
        add("POST", r"/carriers", self._set_carriers)
        add("GET", r"/log", self._log)
        add("POST", r"/log/reset", lambda r, b, m: self.sb.reset_log() or {"ok": True})
        add("GET", r"/config", lambda r, b, m: self.sb.config())
        add("POST", r"/config", self._configure)
        add("GET", r"/faults", lambda r, b, m: self.sb.fault_injector.snapshot())
        add("POST", r"/faults", self._faults)
        add("DELETE", r"/faults", lambda r, b, m: self.sb.clear_faults() or {"rules": []})
        add("POST", r"/tokens/expire", lambda r, b, m: {"expired": self.sb.expire_access_tokens()})
        add("POST", r"/tokens/revoke", self._revoke)
        add("POST", r"/tokens/issue", self._issue)
        add("GET", r"/credentials", lambda r, b, m: self.sb.credentials.summary())
        add("POST", r"/applications", self._add_application)
        add("POST", r"/refresh_tokens", self._add_refresh_token)

    def _add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(rf"^/_sandbox{pattern}/?$"), handler))

    def handle(self, request: Request) -> Response:
        """Answer one admin request."""
        path = request.path
        methods_seen = []
        for method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found is None:
                continue
            methods_seen.append(method)
            if method != request.method:
                continue
            try:
                body = self._body(request)
                result = handler(request, body, found)
            except AdminError as exc:
                return _json({"error": str(exc)}, exc.status)
            except (ValueError, TypeError, KeyError) as exc:
                return _json({"error": str(exc)}, 400)
            if request.method != "GET":
                self.sb.persist()
            status = (
                201
                if request.method == "POST" and path.rstrip("/").endswith(("/products", "/orders"))
                else 200
            )
            return _json(result, status)
        if methods_seen:
            return _json({"error": f"use {' or '.join(methods_seen)}"}, 405)
        return _json({"error": f"no admin route {path}"}, 404)

    @staticmethod
    def _body(request: Request) -> Any:
        raw = request.get_data()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AdminError(f"the body is not valid JSON: {exc}") from None

    # -- handlers ------------------------------------------------------------------------
    def _state(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        include = request.args.get("include")
        # `include=` (empty) asks for the counts only.
        parts = None if include is None else [p.strip() for p in include.split(",") if p.strip()]
        return self.sb.state(include=parts)

    @staticmethod
    def _generation_args(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        unknown = set(body) - set(keys) - {"count"}
        if unknown:
            raise AdminError(f"unknown generation options: {sorted(unknown)}")
        return {k: body[k] for k in keys if k in body}

    def _seed_products(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if isinstance(body, dict) and "count" in body:
            args = self._generation_args(body, ("profile_id", "sku_prefix", "start_index"))
            ids = self.sb.seed_products(count=int(body["count"]), **args)
        elif isinstance(body, dict) and "products" in body:
            ids = self.sb.seed_products(body["products"])
        elif isinstance(body, dict):
            ids = self.sb.seed_products([body])
        elif isinstance(body, list):
            ids = self.sb.seed_products(body)
        else:
            raise AdminError("send a product, a list of products or {'count': N}")
        return {"count": len(ids), "ids": ids}

    def _get_product(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        product = self.sb.get_product(int(match["id"]))
        if product is None:
            raise AdminError(f"no product {match['id']}", 404)
        return product

    def _delete_product(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if not self.sb.delete_product(int(match["id"])):
            raise AdminError(f"no product {match['id']}", 404)
        return {"deleted": int(match["id"])}

    def _seed_orders(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if isinstance(body, dict) and "count" in body:
            args = self._generation_args(
                body, ("profile_id", "max_items", "big_orders", "days", "exported_by")
            )
            ids = self.sb.seed_orders(count=int(body["count"]), **args)
        elif isinstance(body, dict) and "orders" in body:
            ids = self.sb.seed_orders(body["orders"])
        elif isinstance(body, dict):
            ids = self.sb.seed_orders([body])
        elif isinstance(body, list):
            ids = self.sb.seed_orders(body)
        else:
            raise AdminError("send an order, a list of orders or {'count': N}")
        return {"count": len(ids), "ids": ids}

    def _get_order(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        order = self.sb.get_order(int(match["id"]))
        if order is None:
            raise AdminError(f"no order {match['id']}", 404)
        return order

    def _set_carriers(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if isinstance(body, dict) and "carriers" in body:
            return self.sb.set_carriers(body["carriers"], replace=bool(body.get("replace", True)))
        if body is None:
            raise AdminError("send {'carriers': {...}, 'replace': bool}")
        return self.sb.set_carriers(body, replace=True)

    def _log(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        since = int(request.args.get("since", "0"))
        return self.sb.request_log(since=since, entries=_flag(request.args.get("entries"), True))

    def _configure(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if not isinstance(body, dict):
            raise AdminError("send a JSON object of settings")
        self.sb.configure(**body)
        return self.sb.config()

    def _faults(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if not isinstance(body, dict | list):
            raise AdminError("send {'rules': [...]} or {'add': {...}} or {'clear': true}")
        if isinstance(body, dict) and body.get("clear"):
            self.sb.clear_faults()
        elif isinstance(body, dict) and "add" in body:
            self.sb.fault_injector.add(FaultRule.from_dict(body["add"]))
        else:
            config = FaultConfig.from_dict(body)
            if isinstance(body, dict) and body.get("replace") is False:
                for rule in config.rules:
                    self.sb.fault_injector.add(rule)
            else:
                self.sb.set_faults(config)
        return self.sb.fault_injector.snapshot()

    def _revoke(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        token = (body or {}).get("refresh_token")
        if not token:
            raise AdminError("send {'refresh_token': ...}")
        if not self.sb.revoke_refresh_token(token):
            raise AdminError("unknown refresh token", 404)
        return {"revoked": True}

    def _issue(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        kwargs = {}
        if body and body.get("refresh_token"):
            kwargs["refresh_token"] = body["refresh_token"]
        return {"access_token": self.sb.issue_access_token(**kwargs)}

    def _add_application(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if not isinstance(body, dict) or not body.get("application_id"):
            raise AdminError("send {'application_id': ..., 'shared_secret': ...}")
        self.sb.add_application(body["application_id"], body.get("shared_secret", ""))
        return {"ok": True}

    def _add_refresh_token(self, request: Request, body: Any, match: re.Match[str]) -> Any:
        if not isinstance(body, dict) or not body.get("refresh_token"):
            raise AdminError(
                "send {'refresh_token': ..., 'application_id': ..., 'profile_ids': [...]}"
            )
        self.sb.add_refresh_token(
            body["refresh_token"], body["application_id"], body.get("profile_ids") or []
        )
        return {"ok": True}
