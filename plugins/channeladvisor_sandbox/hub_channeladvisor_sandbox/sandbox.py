"""`SandboxCore`: a local ChannelAdvisor REST API (see the package docstring) and its Python
admin API. Settings are plain attributes read on every request, so they can be changed at
run time (`sb.latency_ms = 50`, `sb.configure(rate_limit_per_minute=10)` or
`POST /_sandbox/config`).
"""

from __future__ import annotations

import contextlib
import gc
import random
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import constants as c
from .auth import Credentials
from .errors import AdminError
from .faults import FaultConfig, FaultInjector, FaultRule
from .limits import InFlightLimiter, RateLimiter
from .model import utcnow
from .persist import StateFile
from .reqlog import DEFAULT_MAX_BODIES, RequestLog
from .seed import generate_orders, generate_products
from .state import Store


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _positive(name: str, value: Any) -> float:
    if _non_negative(name, value) <= 0:
        raise ValueError(f"{name} must be greater than 0")
    return float(value)


def _token_errors(name: str, value: Any) -> str:
    if value not in ("oauth", "text"):
        raise ValueError(f"{name} must be 'oauth' or 'text'")
    return str(value)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


# Run-time settings and their validators.
_SETTINGS = {
    "token_ttl": _positive,
    "products_page_size": _positive_int,
    "orders_page_size": _positive_int,
    "rate_limit_per_minute": _positive_int,
    "rate_window_seconds": _positive,
    "max_in_flight": _positive_int,
    "retry_after": _boolean,
    "latency_ms": _non_negative,
    "latency_jitter_ms": _non_negative,
    "max_batch_parts": _positive_int,
    "expand_cap": _positive_int,
    "max_logged_bodies": _non_negative_int,
    "token_errors": _token_errors,
    "omitted_complete_dc_list": _boolean,
}


@contextlib.contextmanager
def _bulk_load() -> Iterator[None]:
    """Pause the cyclic GC while creating many rows: it otherwise rescans the growing
    heap again and again (a third of the time of seeding 100k products)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SandboxCore:
    """A local stand-in for the ChannelAdvisor REST API, with switches and an admin API: all of
    it but the HTTP server, which :class:`~.server.Sandbox` adds (so that the admin routes and
    the WSGI app can depend on this class without an import circle).

    Args:
        seed: seeds generated data, latency jitter and fault draws.
        token_ttl: access token lifetime in seconds (`expires_in`).
        products_page_size: server page size of `GET /v1/Products`.
        orders_page_size: server page size of `GET /v1/Orders`.
        rate_limit_per_minute: requests per profile per window (a batch counts 1 + parts).
        max_in_flight: concurrent requests per application id.
        retry_after: send `Retry-After` with 429s (the real service may not).
        latency_ms / latency_jitter_ms: added to every request (fixed + uniform jitter).
        faults: injected faults (see `faults`).
        state_file: optional SQLite file to keep the state in across restarts.
        rate_window_seconds: the sliding window of the rate limit (60; shrink it to scale
            time in tests and benchmarks).
        max_batch_parts: most requests a `$batch` may carry (100).
        expand_cap: most entries of an expanded collection in list responses (20).
        max_logged_bodies: how many of the most recent request-log entries keep the JSON
            body of their request (0: none; older entries keep only `body_size`).
        token_errors: how the token endpoint refuses: `oauth` (a JSON 400 naming
            `invalid_client` or `invalid_grant`) or `text` (a bare plain-text `Bad Request`).
        omitted_complete_dc_list: what an UpdateQuantity without `CompleteDCList` means
            (False; True: the list is complete, so the DCs it leaves out go to zero —
            the reading clients must guard against, reference §3.3).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        token_ttl: float = 3600,
        products_page_size: int = 100,
        orders_page_size: int = 20,
        rate_limit_per_minute: int = 2000,
        max_in_flight: int = 5,
        retry_after: bool = True,
        latency_ms: float = 0,
        latency_jitter_ms: float = 0,
        faults: FaultConfig | None = None,
        state_file: str | None = None,
        rate_window_seconds: float = 60.0,
        max_batch_parts: int = 100,
        expand_cap: int = 20,
        max_logged_bodies: int = DEFAULT_MAX_BODIES,
        token_errors: str = "oauth",
        omitted_complete_dc_list: bool = False,
    ) -> None:
        self.token_ttl: float = 3600.0
        self.products_page_size = 100
        self.orders_page_size = 20
        self.rate_limit_per_minute = 2000
        self.rate_window_seconds = 60.0
        self.max_in_flight = 5
        self.retry_after = True
        self.latency_ms = 0.0
        self.latency_jitter_ms = 0.0
        self.max_batch_parts = 100
        self.expand_cap = 20
        self.token_errors = "oauth"
        self.omitted_complete_dc_list = False
        self.store = Store()
        self.credentials = Credentials()
        self.log = RequestLog()
        self.rate_limiter = RateLimiter()
        self.in_flight = InFlightLimiter()
        self._seed = seed
        self.fault_injector = FaultInjector(seed, faults)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._generation = 0
        self._stop_event = threading.Event()
        self.url: str | None = None
        self.configure(
            token_ttl=token_ttl,
            products_page_size=products_page_size,
            orders_page_size=orders_page_size,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_window_seconds=rate_window_seconds,
            max_in_flight=max_in_flight,
            retry_after=retry_after,
            latency_ms=latency_ms,
            latency_jitter_ms=latency_jitter_ms,
            max_batch_parts=max_batch_parts,
            expand_cap=expand_cap,
            max_logged_bodies=max_logged_bodies,
            token_errors=token_errors,
            omitted_complete_dc_list=omitted_complete_dc_list,
        )
        self.credentials.add_application(c.DEMO_APPLICATION_ID, c.DEMO_SHARED_SECRET)
        self.credentials.add_refresh_token(
            c.DEMO_REFRESH_TOKEN, c.DEMO_APPLICATION_ID, (c.DEMO_PROFILE_ID, c.OTHER_PROFILE_ID)
        )
        self.state_file = state_file
        self._state: StateFile | None = StateFile(state_file) if state_file else None
        self.loaded_from_file = False
        if self._state is not None:
            self.loaded_from_file = self._state.load(self.store, self.credentials)

    # -- settings --------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The seed of generated data, jitter and fault draws."""
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._seed = int(value)
        self.fault_injector.seed = self._seed
        with self._rng_lock:
            self._rng = random.Random(self._seed)

    @property
    def max_logged_bodies(self) -> int:
        """How many of the most recent log entries keep their request body (a setting)."""
        return self.log.max_bodies

    @max_logged_bodies.setter
    def max_logged_bodies(self, value: int) -> None:
        self.log.max_bodies = value

    @property
    def faults(self) -> FaultConfig:
        """The current fault rules (with their counters)."""
        return self.fault_injector.config

    @faults.setter
    def faults(self, value: FaultConfig | Mapping[str, Any] | list[Any] | None) -> None:
        self.set_faults(value)

    def configure(self, **settings: Any) -> None:
        """Change settings (any constructor argument); validated before anything changes.

        A new `state_file` receives the whole current state; None stops persisting.
        """
        for name in settings:
            if name not in _SETTINGS and name not in ("seed", "faults", "state_file"):
                raise AdminError(f"unknown setting {name!r}")
        path = settings.get("state_file")
        if path is not None and not isinstance(path, str):
            raise AdminError("state_file must be a path or null")
        checked = {}
        try:
            for name, value in settings.items():
                if name in _SETTINGS:
                    checked[name] = _SETTINGS[name](name, value)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        for name, value in checked.items():
            setattr(self, name, value)
        if "seed" in settings:
            self.seed = settings["seed"]
        if "faults" in settings:
            self.set_faults(settings["faults"])
        if "state_file" in settings:
            self._switch_state_file(settings["state_file"])

    def _switch_state_file(self, path: str | None) -> None:
        """Persist to another file from now on (writing the whole state there), or stop."""
        if path == self.state_file:
            return
        if self._state is not None:
            self.persist()
            self._state.close()
        self.state_file = path
        self._state = StateFile(path) if path else None
        if self._state is not None:
            with self.store.lock:
                self.store.dirty_products |= set(self.store.products.rows)
                self.store.dirty_orders |= set(self.store.orders.rows)
            self.persist()

    def config(self) -> dict[str, Any]:
        """The current settings (as `POST /_sandbox/config` accepts them)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _SETTINGS}
        out["seed"] = self._seed
        out["faults"] = self.fault_injector.snapshot()
        out["state_file"] = self.state_file
        return out

    def next_latency(self) -> float:
        """Seconds to hold the next request (fixed + seeded jitter)."""
        if not self.latency_ms and not self.latency_jitter_ms:
            return 0.0
        with self._rng_lock:
            jitter = self._rng.uniform(0, self.latency_jitter_ms) if self.latency_jitter_ms else 0
        return (self.latency_ms + jitter) / 1000.0

    # -- faults ----------------------------------------------------------------------------
    def set_faults(self, config: FaultConfig | Mapping[str, Any] | list[Any] | None) -> None:
        """Replace all fault rules."""
        if config is None:
            config = FaultConfig()
        elif not isinstance(config, FaultConfig):
            try:
                config = FaultConfig.from_dict(config)
            except (ValueError, TypeError) as exc:
                raise AdminError(str(exc)) from None
        self.fault_injector.replace(config)

    def add_fault(
        self,
        kind: str,
        *,
        rate: float = 1.0,
        pattern: str | None = None,
        method: str | None = None,
        count: int | None = None,
        delay_s: float = 5.0,
        scope: str = "any",
        message: str | None = None,
        status: int | None = None,
        target: str | None = None,
    ) -> FaultRule:
        """Add one fault rule (see `faults.FaultRule`; `message` is the error text of a
        status kind, e.g. what a `400` says; `status` and `target` shape the hostile answers
        `html`, `redirect` and `foreign_next_link`)."""
        rule = FaultRule(
            kind,
            rate=rate,
            pattern=pattern,
            method=method,
            count=count,
            delay_s=delay_s,
            scope=scope,
            message=message,
            status=status,
            target=target,
        )
        self.fault_injector.add(rule)
        return rule

    def fail_next(
        self,
        kind: str,
        n: int = 1,
        *,
        pattern: str | None = None,
        method: str | None = None,
        delay_s: float = 5.0,
        scope: str = "any",
        message: str | None = None,
        status: int | None = None,
        target: str | None = None,
    ) -> FaultRule:
        """Fail exactly the next `n` requests matching `pattern`/`method` with `kind`."""
        return self.add_fault(
            kind,
            rate=1.0,
            pattern=pattern,
            method=method,
            count=n,
            delay_s=delay_s,
            scope=scope,
            message=message,
            status=status,
            target=target,
        )

    def clear_faults(self) -> None:
        """Remove all fault rules."""
        self.fault_injector.replace(FaultConfig())

    def persist(self) -> None:
        """Write pending changes to the state file (no-op without one)."""
        if self._state is not None:
            self._state.flush(self.store, self.credentials)

    def close(self) -> None:
        """Close the state file (:class:`~.server.Sandbox` stops serving first)."""
        if self._state is not None:
            self._state.close()
            self._state = None

    # -- credentials -----------------------------------------------------------------------
    def add_application(self, application_id: str, shared_secret: str) -> None:
        """Register an application (id -> shared secret)."""
        self.credentials.add_application(application_id, shared_secret)
        self.persist()

    def add_refresh_token(
        self, refresh_token: str, application_id: str, profile_ids: Sequence[int]
    ) -> None:
        """Register a refresh token; the first profile is the token's primary one."""
        try:
            self.credentials.add_refresh_token(refresh_token, application_id, tuple(profile_ids))
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        self.persist()

    def revoke_refresh_token(self, refresh_token: str) -> bool:
        """Revoke a refresh token (and its access tokens); False if unknown."""
        done = self.credentials.revoke(refresh_token)
        self.persist()
        return done

    def expire_access_tokens(self) -> int:
        """Expire every access token now; return how many were live."""
        return self.credentials.expire_all()

    def issue_access_token(self, refresh_token: str = c.DEMO_REFRESH_TOKEN) -> str:
        """An access token for a refresh token, without HTTP (for test setup)."""
        try:
            return self.credentials.issue(refresh_token, float(self.token_ttl)).token
        except ValueError as exc:
            raise AdminError(str(exc)) from None

    # -- data ------------------------------------------------------------------------------
    def _next_rng(self, what: str) -> random.Random:
        self._generation += 1
        return random.Random(f"{self._seed}:{what}:{self._generation}")

    def seed_products(
        self,
        products: Iterable[Mapping[str, Any]] | None = None,
        *,
        count: int | None = None,
        profile_id: int = c.DEMO_PROFILE_ID,
        sku_prefix: str = "SKU-",
        start_index: int | None = None,
    ) -> list[int]:
        """Create products from dicts, or generate `count` of them; return their IDs.

        A product dict takes any Product property (Sku required; ProfileID defaults to
        DEMO_PROFILE_ID) plus: `Quantity` (DC 0 available), `OpenAllocatedQuantity`,
        `PendingCheckoutQuantity`, `PendingPaymentQuantity`, `PendingShipmentQuantity`
        (DC 0 buckets), `DCQuantities` ([{DistributionCenterID, AvailableQuantity, ...}]),
        `Labels`, `Attributes`, `Images`. Generated SKUs are `<sku_prefix><n:06d>`,
        numbered on from the profile's existing products unless `start_index` is given
        (the same index in two profiles gives the same SKU, on purpose).
        """
        if products is None and count is None:
            raise AdminError("give products or count")
        if products is None:
            assert count is not None
            if count < 0:
                raise AdminError("count must be >= 0")
            with self.store.lock, _bulk_load():
                if start_index is None:
                    existing = self.store.products.lookup("ProfileID", profile_id) or ()
                    start_index = len(existing) + 1
                products = generate_products(
                    self._next_rng("products"),
                    count,
                    profile_id=profile_id,
                    start_index=start_index,
                    sku_prefix=sku_prefix,
                )
        ids = []
        with self.store.lock, _bulk_load():
            for product in products:
                ids.append(self.store.create_product(product)["ID"])
        self.persist()
        return ids

    def create_product(self, product: Mapping[str, Any]) -> int:
        """Create one product (see `seed_products`); return its ID."""
        return self.seed_products([product])[0]

    def delete_product(self, product_id: int) -> bool:
        """Delete a product as a UI delete would; False if it does not exist."""
        done = self.store.delete_product(product_id)
        self.persist()
        return done

    def get_product(self, product_id: int) -> dict[str, Any] | None:
        """A product's admin view (all properties, per-DC quantities), or None."""
        with self.store.lock:
            row = self.store.products.rows.get(product_id)
            return self.store.admin_product(row) if row else None

    def find_products(self, sku: str) -> list[dict[str, Any]]:
        """Admin views of all products with this SKU (case-insensitive), any profile."""
        with self.store.lock:
            keys = sorted(self.store.products.lookup("Sku", sku.lower()) or ())
            return [self.store.admin_product(self.store.products.rows[k]) for k in keys]

    def seed_orders(
        self,
        orders: Iterable[Mapping[str, Any]] | None = None,
        *,
        count: int | None = None,
        profile_id: int = c.DEMO_PROFILE_ID,
        max_items: int = 3,
        big_orders: int = 0,
        days: int = 30,
        exported_by: Sequence[str] = (),
    ) -> list[int]:
        """Create orders from dicts, or generate `count` of them; return their IDs.

        An order dict takes any Order property plus `Items` (required: [{Sku, Quantity,
        UnitPrice?, ProductID?...}]) and `exported_by` (application ids that already
        exported it). Each order gets an initial fulfillment with its lines and the
        requested carrier/class; an item with `DistributionCenterID` goes to an initial
        fulfillment of that DC instead (one per DC; an externally managed DC's is the
        marketplace's, and the order's DistributionCenterTypeRollup follows: Mixed or
        ExternallyManaged). Generated orders use the profile's products (50 are
        generated first if it has none); `big_orders` of them get 21-30 lines.
        """
        if orders is None and count is None:
            raise AdminError("give orders or count")
        if orders is None:
            assert count is not None
            with self.store.lock:
                keys = sorted(self.store.products.lookup("ProfileID", profile_id) or ())
            if not keys:
                self.seed_products(count=50, profile_id=profile_id)
            with self.store.lock:
                keys = sorted(self.store.products.lookup("ProfileID", profile_id) or ())
                products = [self.store.products.rows[k] for k in keys]
                carriers = {k: list(v) for k, v in self.store.carriers.items()}
                orders = generate_orders(
                    self._next_rng("orders"),
                    count,
                    products=products,
                    carriers=carriers,
                    profile_id=profile_id,
                    now=utcnow(),
                    max_items=max_items,
                    big_orders=big_orders,
                    days=days,
                    exported_by=exported_by,
                )
        ids = []
        with self.store.lock, _bulk_load():
            for order in orders:
                ids.append(self.store.create_order(order)["ID"])
        self.persist()
        return ids

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        """Cancel an order in ChannelAdvisor (as the marketplace would); its admin view."""
        with self.store.lock:
            view = self.store.admin_order(self.store.cancel_order(order_id))
        self.persist()
        return view

    def get_order(self, order_id: int) -> dict[str, Any] | None:
        """An order's admin view (items, fulfillments with items, export flags), or None."""
        with self.store.lock:
            row = self.store.orders.rows.get(order_id)
            return self.store.admin_order(row) if row else None

    def carriers(self) -> dict[str, list[str]]:
        """The account's carrier -> classes list (what Ship validates against)."""
        with self.store.lock:
            return {k: list(v) for k, v in self.store.carriers.items()}

    def set_carriers(
        self, carriers: Mapping[str, list[str]] | list[Mapping[str, Any]], replace: bool = True
    ) -> dict[str, list[str]]:
        """Replace (or extend) the carrier list: {"UPS": ["Ground", ...]} or
        [{"Carrier": "UPS", "Classes": [...]}]."""
        result = self.store.set_carriers(carriers, replace=replace)
        self.persist()
        return result

    def state(self, include: Iterable[str] | None = None) -> dict[str, Any]:
        """The whole state, or the parts named in `include` (products, orders, carriers,
        distribution_centers, profiles)."""
        return self.store.state(include)

    def reset(self) -> None:
        """Drop products and orders, the log, the faults and the spent rate budget."""
        self.store.clear_data()
        self.reset_log()
        self.clear_faults()
        self.rate_limiter.reset()
        self.persist()

    # -- log -------------------------------------------------------------------------------
    def request_log(self, since: int = 0, entries: bool = True) -> dict[str, Any]:
        """The request log: entries with seq > `since` (optional) and statistics.

        An entry holds the request's JSON `body` while it is among the `max_logged_bodies`
        most recent ones (see `reqlog`)."""
        return self.log.snapshot(
            since=since,
            include_entries=entries,
            in_flight={
                "admitted": dict(self.in_flight.max_admitted),
                "attempted": dict(self.in_flight.max_attempted),
            },
        )

    def reset_log(self) -> None:
        """Clear the log, its totals and the in-flight peaks."""
        self.log.reset()
        self.in_flight.reset_peaks()
