"""The `/v1` resources: routing, profile attribution for rate limiting, and the handlers.

Handlers work on a transport-free `ApiRequest` and answer an `ApiResponse`, so the same code
serves top-level HTTP requests and the parts of a `$batch`.

Choices where the reference is UNCERTAIN (numbers are its §§):

- Orders page size 20 (§2.5: the docs disagree, 20 or 100; their nextLink example uses
  `$skip=20`). `$top` above the page size is honoured across pages (a nextLink with the
  remaining `$top`). The reported quirk "a page past the end returns the first page again"
  (single observation) is not reproduced: past the end the page is empty.
- UpdateQuantity, PATCH/PUT, DELETE, Export and Ship answer 204 No Content (§3.3, §4.5).
- PUT is a partial update like PATCH (§3.4: partial PUT bodies work for SV and R).
- Routing failures answer ASP.NET's `{"Message": ...}` shape, entity errors the OData error
  (§7: clients must parse both).

Paging (reference §2.5): the server decides the page size (Products 100, Orders 20 by
default, everything else 100); `@odata.nextLink`
is absolute, built from the host the request used, and carries `$skip`. Like CA, it echoes
`access_token` only when the client put the token in the query string; with the Bearer
header the links stay token-free. Links are recomputed on every request (no snapshot), so
changing the result set while paging (e.g. exporting orders of an `exported=false` listing)
shifts later pages, as skip-based paging does on the real service.

Expanded collections inside LIST responses (Orders' Items/Fulfillments, and nested ones)
are capped at 20 entries with a `<Nav>@odata.nextLink` to `Orders(ID)/Items?$skip=20`;
a single-entity GET returns all of them (reference §2.5).

Rate-limit attribution (which profile's budget a request spends): the profile of the
entity the URL addresses (Products(ID), Orders(ID) and their actions, Fulfillments(ID))
when the caller can see it; else the first `ProfileID eq N` conjunct of `$filter` naming a
profile the token covers; else the token's primary (first) profile. A `$batch` envelope
spends one unit of the primary profile and each part is attributed on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from .auth import Principal
from .errors import ApiError
from .model import ENTITY_SETS, ENTITY_TYPES, EntityType, json_value
from .odata import (
    ExpandOption,
    compile_filter,
    parse_bool_option,
    parse_expand,
    parse_int_option,
    parse_orderby,
    parse_select,
)
from .state import Store

ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true"
ODATA_ERROR_JSON = "application/json; odata.metadata=minimal"
PLAIN_JSON = "application/json; charset=utf-8"

# Characters left unescaped in nextLink query values (as in CA's own links).
_LINK_SAFE = "$,()':/"
# Entity sets whose keys can address a row in a nextLink of a nested collection.
_SET_OF_TYPE = {"Order": "Orders", "Fulfillment": "Fulfillments", "Product": "Products"}


class ApiSettings(Protocol):
    """The run-time settings the handlers read (the Sandbox provides them)."""

    products_page_size: int
    orders_page_size: int
    expand_cap: int
    omitted_complete_dc_list: bool


@dataclass
class ApiRequest:
    """One API call, from HTTP or from a batch part."""

    method: str
    path: str
    args: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str
    principal: Principal
    token_in_query: str | None = None
    in_batch: bool = False


@dataclass
class ApiResponse:
    """An answer: status, body (JSON-able, or str for text) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def content_bytes(self) -> bytes:
        """The body as sent on the wire."""
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


def error_response(error: ApiError) -> ApiResponse:
    """Render an ApiError in its shape (OData error, `{"Message"}` or plain text)."""
    headers = dict(error.headers)
    if error.shape == "odata":
        headers.setdefault("Content-Type", ODATA_ERROR_JSON)
        headers.setdefault("OData-Version", "4.0")
        body: Any = {"error": {"code": "", "message": error.message}}
    elif error.shape == "message":
        headers.setdefault("Content-Type", PLAIN_JSON)
        body = {"Message": error.message}
    else:
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        body = error.message
    return ApiResponse(error.status, body, headers)


def json_response(body: Any, status: int = 200) -> ApiResponse:
    """An OData JSON payload."""
    return ApiResponse(status, body, {"Content-Type": ODATA_JSON, "OData-Version": "4.0"})


NO_CONTENT = 204


@dataclass(frozen=True)
class Route:
    """A matched URL: what kind of resource, which set, key and action/navigation."""

    kind: str  # collection | entity | count | action | nav | batch
    set_name: str = ""
    key: int | None = None
    name: str = ""  # action or navigation name


_SETS = "|".join(ENTITY_SETS)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/v1/\$batch$"), "batch"),
    (re.compile(rf"^/v1/(?P<set>{_SETS})/\$count$"), "count"),
    (re.compile(rf"^/v1/(?P<set>{_SETS})$"), "collection"),
    (re.compile(rf"^/v1/(?P<set>{_SETS})\((?P<key>\d+)\)$"), "entity"),
    (re.compile(r"^/v1/(?P<set>Products)\((?P<key>\d+)\)/(?P<name>UpdateQuantity)$"), "action"),
    (re.compile(r"^/v1/(?P<set>Orders)\((?P<key>\d+)\)/(?P<name>Export|Ship)$"), "action"),
    (re.compile(rf"^/v1/(?P<set>{_SETS})\((?P<key>\d+)\)/(?P<name>[A-Za-z]+)$"), "nav"),
]

_METHODS: dict[tuple[str, str], tuple[str, ...]] = {
    ("batch", ""): ("POST",),
    ("count", ""): ("GET",),
    ("collection", ""): ("GET",),
    ("entity", "Products"): ("GET", "PATCH", "PUT", "DELETE"),
    ("entity", ""): ("GET",),
    ("action", "Export"): ("POST", "DELETE"),
    ("action", ""): ("POST",),
    ("nav", ""): ("GET",),
}


def not_routed(path: str) -> ApiError:
    """The ASP.NET answer for a URL no route matches."""
    return ApiError(
        404,
        f"No HTTP resource was found that matches the request URI '{path}'.",
        shape="message",
    )


class Api:
    """Routes `/v1` requests and runs the handlers against the store."""

    def __init__(self, store: Store, settings: ApiSettings) -> None:
        self.store = store
        self.settings = settings

    # -- routing -------------------------------------------------------------------------
    def match(self, method: str, path: str) -> Route:
        """The route of a path, or ApiError 404 (unknown URL) / 405 (wrong method)."""
        for pattern, kind in _PATTERNS:
            found = pattern.match(path)
            if found is None:
                continue
            groups = found.groupdict()
            key = int(groups["key"]) if groups.get("key") else None
            route = Route(kind, groups.get("set") or "", key, groups.get("name") or "")
            if kind == "nav":
                etype = ENTITY_TYPES[ENTITY_SETS[route.set_name]]
                if route.name not in etype.navigation:
                    raise not_routed(path)
            allowed = (
                (_METHODS.get((kind, route.name)) if route.name else None)
                or _METHODS.get((kind, route.set_name))
                or _METHODS[(kind, "")]
            )
            if method.upper() not in allowed:
                raise ApiError(
                    405,
                    f"The requested resource does not support http method '{method.upper()}'.",
                    shape="message",
                )
            return route
        raise not_routed(path)

    def attribute(self, req: ApiRequest, route: Route | None) -> int:
        """The profile whose rate budget this request spends (rule in the module docstring)."""
        principal = req.principal
        if route is not None and route.key is not None and route.set_name != "DistributionCenters":
            coll = self.store.collection(route.set_name)
            with self.store.lock:
                row = self.store.get_visible(coll, route.key, principal.profile_ids)
                if row is not None:
                    scope = coll.scope_field or "ID"
                    return int(row[scope])
        if route is not None and route.kind in ("collection", "count") and "$filter" in req.args:
            etype = ENTITY_TYPES[ENTITY_SETS[route.set_name]]
            if "ProfileID" in etype.fields:
                try:
                    pinned = compile_filter(req.args["$filter"], etype).pinned("ProfileID")
                except ApiError:
                    pinned = []
                for value in pinned:
                    if value in principal.profile_ids:
                        return int(value)
        return principal.primary_profile

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, req: ApiRequest, route: Route) -> ApiResponse:
        """Run the handler of a matched (non-batch) route; ApiErrors become responses."""
        try:
            if route.kind == "collection":
                return self._list(req, route)
            if route.kind == "count":
                return self._count(req, route)
            if route.kind == "entity":
                return self._entity(req, route)
            if route.kind == "nav":
                return self._nav(req, route)
            if route.kind == "action":
                return self._action(req, route)
            raise not_routed(req.path)
        except ApiError as error:
            return error_response(error)

    @staticmethod
    def is_write(method: str) -> bool:
        """Whether a method may change state (used to persist after the call)."""
        return method.upper() in ("POST", "PATCH", "PUT", "DELETE")

    # -- helpers -------------------------------------------------------------------------
    def _page_size(self, set_name: str) -> int:
        if set_name == "Products":
            return max(1, int(self.settings.products_page_size))
        if set_name == "Orders":
            return max(1, int(self.settings.orders_page_size))
        return 100

    @staticmethod
    def _json_body(req: ApiRequest, required: bool = True) -> Any:
        if not req.body.strip():
            if required:
                raise ApiError(400, "The request body is empty; a JSON object was expected.")
            return None
        content_type = req.headers.get("Content-Type", "")
        if content_type and "json" not in content_type.lower():
            media = content_type.split(";")[0].strip()
            raise ApiError(
                415,
                f"The request entity's media type '{media}' is not supported for this resource.",
                shape="message",
            )
        try:
            return json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON: {exc}.") from None

    def _link(self, req: ApiRequest, path: str, args: list[tuple[str, str]]) -> str:
        if req.token_in_query:
            args = [*args, ("access_token", req.token_in_query)]
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_LINK_SAFE)}" for k, v in args)
        return f"{req.base_url}{path}" + (f"?{query}" if query else "")

    def _next_link(self, req: ApiRequest, skip: int, top: int | None) -> str:
        args = [(k, v) for k, v in req.args.items() if k not in ("$skip", "$top", "access_token")]
        if top is not None:
            args.append(("$top", str(top)))
        args.append(("$skip", str(skip)))
        return self._link(req, req.path, args)

    def _context(
        self,
        req: ApiRequest,
        path: str,
        select: list[str] | None,
        expand: dict[str, ExpandOption],
        entity: bool = False,
    ) -> str:
        def inner(sel: list[str] | None, exp: dict[str, ExpandOption]) -> str:
            parts = list(sel or [])
            parts += [f"{name}({inner(opt.select, opt.expand)})" for name, opt in exp.items()]
            return ",".join(parts)

        text = inner(select, expand)
        context = f"{req.base_url}/v1/$metadata#{path}" + (f"({text})" if text else "")
        return context + ("/$entity" if entity else "")

    def serialize(
        self,
        req: ApiRequest,
        row: dict[str, Any],
        etype: EntityType,
        select: list[str] | None,
        expand: dict[str, ExpandOption],
        cap: int | None,
    ) -> dict[str, Any]:
        """A row as the API shows it: selected properties, then expanded collections."""
        names = [n for n in select if n in etype.fields] if select else list(etype.fields)
        out = {name: json_value(row.get(name)) for name in names}
        for nav_name, option in expand.items():
            nav = etype.navigation[nav_name]
            target = ENTITY_TYPES[nav.target]
            children = nav.getter(row)
            set_name = _SET_OF_TYPE.get(etype.name)
            if cap is not None and set_name and len(children) > cap:
                args = []
                if option.expand:
                    args.append(("$expand", ",".join(option.expand)))
                out[f"{nav_name}@odata.nextLink"] = self._link(
                    req, f"/v1/{set_name}({row['ID']})/{nav_name}", [*args, ("$skip", str(cap))]
                )
                children = children[:cap]
            out[nav_name] = [
                self.serialize(req, child, target, option.select, option.expand, cap)
                for child in children
            ]
        return out

    # -- handlers ------------------------------------------------------------------------
    def _list(self, req: ApiRequest, route: Route) -> ApiResponse:
        set_name = route.set_name
        etype = ENTITY_TYPES[ENTITY_SETS[set_name]]
        coll = self.store.collection(set_name)
        args = req.args
        flt = compile_filter(args["$filter"], etype) if "$filter" in args else None
        select = parse_select(args.get("$select"), etype)
        orderby = parse_orderby(args.get("$orderby"), etype)
        expand = parse_expand(args.get("$expand"), etype)
        top = parse_int_option("$top", args.get("$top"))
        skip = parse_int_option("$skip", args.get("$skip")) or 0
        count = parse_bool_option("$count", args.get("$count"))
        extra = None
        if set_name == "Orders" and "exported" in args:
            flag = args["exported"].strip().lower()
            if flag not in ("true", "false"):
                raise ApiError(400, f"'{args['exported']}' is not a valid value for 'exported'.")
            want = flag == "true"
            app = req.principal.application_id

            def extra(row: dict[str, Any]) -> bool:
                return (app in row["_exported_by"]) == want

        size = self._page_size(set_name)
        if top is not None:
            size = min(size, top)
        cap = max(1, int(self.settings.expand_cap))
        with self.store.lock:
            keys = self.store.query(coll, flt, orderby, req.principal.profile_ids, extra)
            page = keys[skip : skip + size]
            value = [self.serialize(req, coll.rows[k], etype, select, expand, cap) for k in page]
        body: dict[str, Any] = {"@odata.context": self._context(req, set_name, select, expand)}
        if count:
            body["@odata.count"] = len(keys)
        body["value"] = value
        more = bool(page) and skip + len(page) < len(keys) and (top is None or top > len(page))
        if more:
            remaining = None if top is None else top - len(page)
            body["@odata.nextLink"] = self._next_link(req, skip + len(page), remaining)
        return json_response(body)

    def _count(self, req: ApiRequest, route: Route) -> ApiResponse:
        etype = ENTITY_TYPES[ENTITY_SETS[route.set_name]]
        flt = compile_filter(req.args["$filter"], etype) if "$filter" in req.args else None
        keys = self.store.query(
            self.store.collection(route.set_name), flt, [], req.principal.profile_ids
        )
        return ApiResponse(200, str(len(keys)), {"Content-Type": "text/plain; charset=utf-8"})

    def _not_found(self, route: Route) -> ApiError:
        assert route.key is not None
        if route.set_name == "Products":
            return self.store.product_not_found(route.key)
        if route.set_name == "Orders":
            return self.store.order_not_found(route.key)
        noun = {
            "Fulfillments": "fulfillment",
            "DistributionCenters": "distribution center",
            "Profiles": "profile",
        }[route.set_name]
        return ApiError(404, f"No {noun} with ID {route.key} was found.")

    def _visible(self, req: ApiRequest, route: Route) -> dict[str, Any]:
        assert route.key is not None
        row = self.store.get_visible(
            self.store.collection(route.set_name), route.key, req.principal.profile_ids
        )
        if row is None:
            raise self._not_found(route)
        return row

    def _entity(self, req: ApiRequest, route: Route) -> ApiResponse:
        assert route.key is not None
        method = req.method.upper()
        principal = req.principal
        if method in ("PATCH", "PUT"):
            # PUT is treated as a partial update, like PATCH (reference §3.4: SV and R send
            # partial PUT bodies and it works for them).
            self.store.patch_product(route.key, self._json_body(req), principal.profile_ids)
            return ApiResponse(NO_CONTENT)
        if method == "DELETE":
            if not self.store.delete_product(route.key, principal.profile_ids):
                raise self._not_found(route)
            return ApiResponse(NO_CONTENT)
        etype = ENTITY_TYPES[ENTITY_SETS[route.set_name]]
        select = parse_select(req.args.get("$select"), etype)
        expand = parse_expand(req.args.get("$expand"), etype)
        with self.store.lock:
            row = self._visible(req, route)
            body = self.serialize(req, row, etype, select, expand, None)
        context = self._context(req, route.set_name, select, expand, entity=True)
        return json_response({"@odata.context": context, **body})

    def _nav(self, req: ApiRequest, route: Route) -> ApiResponse:
        etype = ENTITY_TYPES[ENTITY_SETS[route.set_name]]
        nav = etype.navigation[route.name]
        target = ENTITY_TYPES[nav.target]
        select = parse_select(req.args.get("$select"), target)
        expand = parse_expand(req.args.get("$expand"), target)
        top = parse_int_option("$top", req.args.get("$top"))
        skip = parse_int_option("$skip", req.args.get("$skip")) or 0
        count = parse_bool_option("$count", req.args.get("$count"))
        cap = max(1, int(self.settings.expand_cap))
        size = cap if top is None else min(cap, top)
        with self.store.lock:
            row = self._visible(req, route)
            children = nav.getter(row)
            page = children[skip : skip + size]
            value = [self.serialize(req, c, target, select, expand, cap) for c in page]
        path = f"{route.set_name}({route.key})/{route.name}"
        body: dict[str, Any] = {"@odata.context": self._context(req, path, select, expand)}
        if count:
            body["@odata.count"] = len(children)
        body["value"] = value
        if page and skip + len(page) < len(children) and (top is None or top > len(page)):
            remaining = None if top is None else top - len(page)
            body["@odata.nextLink"] = self._next_link(req, skip + len(page), remaining)
        return json_response(body)

    def _action(self, req: ApiRequest, route: Route) -> ApiResponse:
        assert route.key is not None
        profiles = req.principal.profile_ids
        if route.name == "UpdateQuantity":
            self.store.update_quantity(
                route.key,
                self._json_body(req),
                profiles,
                omitted_complete=self.settings.omitted_complete_dc_list,
            )
            return ApiResponse(NO_CONTENT)
        if route.name == "Export":
            if req.in_batch:
                # Reference §6: Export is not allowed inside $batch.
                raise ApiError(
                    400,
                    "Orders(ID)/Export cannot be used inside a batch request; send it on its own.",
                )
            exported = req.method.upper() == "POST"
            self.store.set_exported(route.key, req.principal.application_id, exported, profiles)
            return ApiResponse(NO_CONTENT)
        if route.name == "Ship":
            self.store.ship(route.key, self._json_body(req), profiles)
            return ApiResponse(NO_CONTENT)
        raise not_routed(req.path)
