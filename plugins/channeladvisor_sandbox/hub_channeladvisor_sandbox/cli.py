"""`hub channeladvisor sandbox`: seed a sandbox and serve it until Ctrl-C.

`sandbox_command` is the click command; `channeladvisor` (alias `cli`) is a group holding
it, which the plugin attaches to the hub CLI as `hub channeladvisor`.
"""

from __future__ import annotations

import signal
import threading

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
    help="Products to generate in the demo profile.",
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
    counts = sandbox.state(include=())["counts"]
    click.echo(f"ChannelAdvisor sandbox listening on {url}")
    click.echo(f"  token endpoint   {url}/oauth2/token")
    click.echo(f"  API base         {url}/v1")
    click.echo(f"  admin            {url}/_sandbox/state")
    click.echo(f"  application id   {c.DEMO_APPLICATION_ID}")
    click.echo(f"  shared secret    {c.DEMO_SHARED_SECRET}   (sandbox-only value, not a secret)")
    click.echo(f"  refresh token    {c.DEMO_REFRESH_TOKEN}")
    click.echo(f"  profile id       {c.DEMO_PROFILE_ID}   (token also sees {c.OTHER_PROFILE_ID})")
    click.echo(f"  data             {counts['products']} products, {counts['orders']} orders")
    click.echo("Press Ctrl-C to stop.")
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
