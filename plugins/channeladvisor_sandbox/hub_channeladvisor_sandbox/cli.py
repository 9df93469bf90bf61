"""`hub channeladvisor sandbox`: seed a sandbox and serve it until Ctrl-C.

`sandbox_command` is the click command; `channeladvisor` (alias `cli`) is a group holding
it, which the plugin attaches to the hub CLI as `hub channeladvisor`. Its banner is what a
newcomer needs to try the hub by hand: a `hub connections add` line to paste, some SKUs and
the shipping methods of its orders.
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections import Counter
from typing import Any

import click

from . import constants as c
from .server import Sandbox


def _serve_until_interrupted() -> None:
    """Block the main thread (the server runs in its own) until Ctrl-C or SIGTERM."""

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (e.g. a benchmark stopping its sandbox) gets the same clean stop as Ctrl-C.
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        never = threading.Event()
        while not never.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)


#: The connection name the banner's paste-ready commands use.
CONNECTION = "sandbox"
#: How many SKUs and shipping methods the banner shows.
SHOWN = 5


def connect_command(url: str, name: str = CONNECTION) -> str:
    """The `hub connections add` line that connects the hub to this sandbox.

    It carries the sandbox's own fixed credentials (constants published in this package,
    accepted by no real ChannelAdvisor): they are printed because connecting by hand needs
    them. `hub demo` echoes no credential at all, and the hub never prints what it stores.
    """
    values = {
        # Any value: the hub refreshes it with the refresh token on first use.
        "access_token": "expired",
        "refresh_token": c.DEMO_REFRESH_TOKEN,
        "profile_id": c.DEMO_PROFILE_ID,
        "application_id": c.DEMO_APPLICATION_ID,
        "shared_secret": c.DEMO_SHARED_SECRET,
        "base_url": url,
    }
    sets = " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in values.items())
    return f"hub connections add {name} --channel channeladvisor {sets}"


def _shipping_text(order: dict[str, Any]) -> str:
    # The text the hub matches mappings against (design §6), from the requested method.
    parts = [order.get("RequestedShippingCarrier") or "", order.get("RequestedShippingClass") or ""]
    return " - ".join(p for p in parts if p)


def banner(sandbox: Sandbox, url: str) -> list[str]:
    """The lines `hub channeladvisor sandbox` prints once it listens on `url`."""
    state = sandbox.state(include=("products", "orders"))
    per_profile = Counter(p.get("ProfileID") for p in state["products"])
    skus = sorted(
        str(p["Sku"]) for p in state["products"] if p.get("ProfileID") == c.DEMO_PROFILE_ID
    )
    methods = Counter(
        _shipping_text(o) for o in state["orders"] if o.get("ProfileID") == c.DEMO_PROFILE_ID
    )
    products = (
        f"{per_profile[c.DEMO_PROFILE_ID]} in profile {c.DEMO_PROFILE_ID}, "
        f"{per_profile[c.OTHER_PROFILE_ID]} in profile {c.OTHER_PROFILE_ID} "
        f"({len(state['products'])} in all)"
    )
    lines = [
        f"ChannelAdvisor sandbox listening on {url}",
        f"  token endpoint   {url}/oauth2/token",
        f"  API base         {url}/v1",
        f"  admin            {url}/_sandbox/state",
        f"  profile id       {c.DEMO_PROFILE_ID}   (the token also sees {c.OTHER_PROFILE_ID})",
        f"  products         {products}",
        f"  orders           {len(state['orders'])}",
        "",
        "Connect the hub to it (sandbox-only credentials, fixed and public: never put real ones",
        "on a command line):",
        f"  {connect_command(url)}",
        "",
        f"Some of its SKUs (profile {c.DEMO_PROFILE_ID}): " + ", ".join(skus[:SHOWN]),
    ]
    if methods:
        lines.append("Shipping methods of its orders (map them before 'hub orders get'):")
        for text, count in methods.most_common(SHOWN):
            add = (
                f"hub shipping-mappings add {CONNECTION} --channel-text {shlex.quote(text)} "
                "--policy standard"
            )
            lines.append(f"  {add}   # {count} order(s)")
    lines += ["", "Press Ctrl-C to stop."]
    return lines


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of generated data.")
@click.option(
    "--products",
    "products",
    default=50,
    show_default=True,
    type=int,
    help="Products to generate in the demo profile (the other profile gets up to 10 of "
    "the same SKUs; the banner says the total).",
)
@click.option(
    "--orders",
    "orders",
    default=20,
    show_default=True,
    type=int,
    help="Orders to generate in the demo profile.",
)
@click.option(
    "--big-orders",
    default=1,
    show_default=True,
    type=int,
    help="How many of the orders get more than 20 lines.",
)
@click.option(
    "--token-ttl",
    default=3600.0,
    show_default=True,
    type=float,
    help="Access token lifetime in seconds.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Latency added to every request.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Random extra latency (0..N ms, seeded).",
)
@click.option(
    "--rate-limit",
    default=2000,
    show_default=True,
    type=int,
    help="Requests per minute per profile (a batch counts 1 + its parts).",
)
@click.option(
    "--max-in-flight",
    default=5,
    show_default=True,
    type=int,
    help="Concurrent requests per application.",
)
@click.option("--no-retry-after", is_flag=True, help="Send 429s without Retry-After.")
@click.option(
    "--state-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Keep the state in this SQLite file (seeding is skipped if it has some).",
)
def sandbox_command(
    host: str,
    port: int,
    seed: int,
    products: int,
    orders: int,
    big_orders: int,
    token_ttl: float,
    latency_ms: float,
    jitter_ms: float,
    rate_limit: int,
    max_in_flight: int,
    no_retry_after: bool,
    state_file: str | None,
) -> None:
    """Serve a local ChannelAdvisor API sandbox with demo data until Ctrl-C."""
    sandbox = Sandbox(
        seed=seed,
        token_ttl=token_ttl,
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        rate_limit_per_minute=rate_limit,
        max_in_flight=max_in_flight,
        retry_after=not no_retry_after,
        state_file=state_file,
    )
    if not sandbox.loaded_from_file:
        sandbox.seed_products(count=products)
        # The other profile holds some of the same SKUs, so a client that forgets
        # `ProfileID eq N` finds two products for one SKU.
        sandbox.seed_products(count=min(products, 10), profile_id=c.OTHER_PROFILE_ID, start_index=1)
        if orders:
            sandbox.seed_orders(count=orders, big_orders=min(big_orders, orders))
    try:
        url = sandbox.start(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    for line in banner(sandbox, url):
        click.echo(line)
    try:
        _serve_until_interrupted()
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        sandbox.close()


@click.group("channeladvisor")
def channeladvisor() -> None:
    """ChannelAdvisor tools (the local API sandbox)."""


channeladvisor.add_command(sandbox_command)
cli = channeladvisor
