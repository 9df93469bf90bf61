"""The ``hub`` command line (design §5, the contract).

Commands are grouped by noun. Every list, show and operation command takes ``--json`` and then
prints exactly one JSON document on stdout; progress and notes go to stderr. Errors become the
contract's exit codes with a one-paragraph message, never a stack trace.

A command returns an :class:`Output` (its JSON document and how to say it as text); one
function, :func:`_emit`, prints the one or the other. Everything the CLI writes passes through
:func:`_out`, which masks secrets with the invocation's redactor (:mod:`hub_core.redaction`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import click

from hub_core import redaction
from hub_core.channel import NullProgress, Progress
from hub_core.db import DATABASE_ENV, Database
from hub_core.errors import ExitCode, HubError, InvalidInput
from hub_core.plugins import PluginLoadWarning, Registry
from hub_core.services import Hub, OperationResult
from hub_core.services import catalog as catalog_service
from hub_core.services import connections as connection_service
from hub_core.services import listings as listing_service
from hub_core.services import orders as order_service
from hub_core.services import runs as run_service
from hub_core.services import secrets as secret_service
from hub_core.services import shipments as shipment_service
from hub_core.services import shipping as shipping_service
from hub_core.services.operations import run_connection
from hub_core.values import MAX_ID, parse_quantity

DEBUG_ENV = "HUB_DEBUG"


class HubCommandError(click.ClickException):
    """A :class:`HubError` on its way out of click, with the contract's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        _out(f"Error: {self.format_message()}", err=True)


#: ``ctx.meta`` keys (shared by every context of one invocation).
_WANTS_JSON = "hub.json"
_PRINTED = "hub.printed"


def _json_error(ctx: click.Context, code: int, message: str) -> None:
    """Under ``--json``, the failure as the one JSON document on stdout (unless one was printed).

    The only place the error document is made: every failure of a command given ``--json``
    (a hub error, a click usage error, an internal error) passes through here on its way out.
    """
    if ctx.meta.get(_WANTS_JSON) and not ctx.meta.get(_PRINTED):
        _dump({"error": {"code": int(code), "message": message}})


class HubGroup(click.Group):
    """The root group: offers the plugins' commands, turns every error into an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # One redactor per invocation, active from parsing to the last error message: the hub
        # adds every connection it opens, and all output and log records are masked with it.
        with redaction.Redactor().active():
            return super().main(*args, **kwargs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _registry(ctx).commands().get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_registry(ctx).commands()})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Known before any parsing, so that a usage error of a command given --json (which
        # click raises before the option's own callback runs) still answers in JSON.
        options = args[: args.index("--")] if "--" in args else args
        ctx.meta[_WANTS_JSON] = "--json" in options
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            _json_error(ctx, exc.exit_code, exc.format_message())
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:
            _json_error(ctx, exc.exit_code, exc.format_message())
            raise
        except click.Abort:
            _json_error(ctx, int(ExitCode.FAILED), "Aborted.")
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HubError as exc:
            # An operation that failed after its run started still prints its run's document,
            # with the error in it: still exactly one document.
            if exc.run_result is not None and ctx.meta.get(_WANTS_JSON):
                error = {"code": int(exc.exit_code), "message": exc.message}
                _dump({**exc.run_result.to_json(), "error": error})
            raise HubCommandError(exc.message, int(exc.exit_code)) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # an internal error: say so, without a trace by default
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            raise HubCommandError(
                f"Internal error: {exc.__class__.__name__}: {exc}. "
                f"Run again with {DEBUG_ENV}=1 for details, and report it.",
                int(ExitCode.FAILED),
            ) from None


class StderrNotes(logging.Handler):
    """Warnings of the hub and its plugins (retry notes), one line each on stderr.

    Written through click to the stderr of the moment; without it Python's last-resort handler
    would print them. Their secrets are masked as each record is made (the redacting filter).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def _notes_to_stderr() -> None:
    """Install :class:`StderrNotes` on the root logger, once per process."""
    root = logging.getLogger()
    if not any(isinstance(handler, StderrNotes) for handler in root.handlers):
        root.addHandler(StderrNotes(logging.WARNING))


class ClickProgress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def set_total(self, total: int) -> None:
        if total and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()

    def advance(self, count: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(count)
            if self.bar.pos >= self.bar.length:
                self.bar.__exit__(None, None, None)
                self.bar = None


def _progress(label: str) -> Progress:
    return ClickProgress(label) if sys.stderr.isatty() else NullProgress()


def _hub(ctx: click.Context) -> Hub:
    """The hub for this invocation: opened (and migrated) on first use."""
    root = ctx.find_root()
    obj = root.ensure_object(dict)
    if "hub" not in obj:
        db = Database(obj.get("url"))
        if db.created:
            _note(f"Created the hub database at {db.location}.")
        hub = obj["hub"] = Hub(
            db=db, registry=obj["registry"], progress=_progress, redactor=redaction.current()
        )
        root.call_on_close(lambda: _announce_new_key(hub))
    return obj["hub"]


def _announce_new_key(hub: Hub) -> None:
    # The operator must know the key exists: without it the stored secrets are lost.
    created = hub.db.secrets.created
    if created is not None:
        _note(
            f"Created the key that encrypts connection secrets: {created.location} (mode 0600). "
            "Back it up apart from the database; see SECURITY.md."
        )


# The CLI's output boundary: everything it writes goes through these two, masked with the
# invocation's redactor (log records are masked as they are made).


def _out(text: str, *, err: bool = False) -> None:
    """Write text (a line, a note, an error) with every secret masked."""
    click.echo(redaction.current().text(text), err=err)


def _dump(data: Any) -> None:
    """Write one JSON document with every secret masked."""
    click.echo(json.dumps(redaction.current().data(data), indent=2, default=str))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_PRINTED] = True


@dataclasses.dataclass
class Output:
    """What a command shows: ``document`` under ``--json``, else the lines ``text`` makes of it
    (a text renderer may also write notes on stderr); then it exits with ``exit_code``."""

    document: Any
    text: Callable[[Any], Iterable[str]]
    exit_code: int = 0


def _emit(output: Output, as_json: bool) -> None:
    """Print a command's output, JSON or text, and exit with its code: the one place."""
    if as_json:
        _dump(output.document)
    else:
        for line in output.text(output.document):
            _out(line)
    if output.exit_code:
        raise click.exceptions.Exit(int(output.exit_code))


def renders(func: Callable[..., Output]) -> Callable[..., None]:
    """Add ``--json`` to a command that returns its :class:`Output`, and emit that output."""

    @functools.wraps(func)
    def command(*args: Any, as_json: bool, **kwargs: Any) -> None:
        _emit(func(*args, **kwargs), as_json)

    return json_option(command)


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Collection[int] = ()
) -> Iterator[str]:
    """``rows`` under a header row, in aligned columns (``right``: right-aligned ones)."""
    cells = [[str(h) for h in headers]] + [
        ["-" if v is None or v == "" else str(v) for v in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        yield "  ".join(padded).rstrip()


def _rows(
    empty: str,
    headers: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
    *,
    right: Collection[int] = (),
) -> Callable[[list[dict[str, Any]]], Iterable[str]]:
    """The text renderer of a list document: one table row per item, or ``empty`` when none."""

    def text(data: list[dict[str, Any]]) -> Iterable[str]:
        return _table(headers, map(row, data), right=right) if data else [empty]

    return text


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to do"


def _note(text: str) -> None:
    _out(text, err=True)


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_WANTS_JSON] = True
    return value


def json_option(func: Callable) -> Callable:
    """``--json``: print exactly one JSON document on stdout."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_remember_json,
        help="Print one JSON document.",
    )(func)


def _operation(result: OperationResult, summary: str) -> Output:
    """An operation's output: its run's document, and its exit code (0, 1 or 4)."""
    return Output(
        result.to_json(), functools.partial(_operation_text, summary=summary), result.exit_code
    )


def _operation_text(data: dict[str, Any], summary: str) -> Iterator[str]:
    records = data["records"]
    # Every record of a small run; of a big one, only those that were not ok.
    shown = [r for r in records if r["outcome"] != "ok" or len(records) <= 50]
    if shown:
        yield from _table(
            ["OUTCOME", "REF", "MESSAGE"], ([r["outcome"], r["ref"], r["message"]] for r in shown)
        )
    if len(shown) < len(records):
        yield f"({len(records) - len(shown)} ok records not shown.)"
    run = f"run {data['run_id']}: " if data["run_id"] else ""
    yield f"{summary} — {run}{data['status']} ({_counts_text(data['counts'])})"
    if data.get("message"):
        yield data["message"]


def _key_values(values: tuple[str, ...], flag: str, example: str | None = None) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; refuses a value without ``=`` or with an empty key."""
    parsed: dict[str, str] = {}
    bad = [v for v in values if "=" not in v or not v.split("=", 1)[0].strip()]
    if bad:
        form = "SKU=QTY" if flag == "--item" else "KEY=VALUE"
        hint = f" Example: {flag} {example}" if example else ""
        raise InvalidInput(f"{flag} takes {form}; got {', '.join(repr(b) for b in bad)}.{hint}")
    for value in values:
        key, _, val = value.partition("=")
        parsed[key.strip()] = val
    return parsed


def _no_empty(ctx: click.Context, param: click.Parameter, values: Any) -> Any:
    """Refuse an empty or blank value of an option that names something (``--sku ""``)."""
    given = values if isinstance(values, tuple) else (values,)
    if any(isinstance(v, str) and not v.strip() for v in given):
        raise click.BadParameter("is empty; give a value, e.g. --sku TSHIRT-M")
    return values


# ------------------------------------------------------------------------------------------


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="HUB_DATABASE_URL",
    metavar="URL",
    help=(
        "SQLAlchemy URL of the hub's database (env HUB_DATABASE_URL; default: hub.db in the "
        "hub's home, HUB_HOME)."
    ),
)
@click.version_option(package_name="hub-core")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """hub: link your catalog to sales channels, sync stock and price, import orders."""
    _notes_to_stderr()
    obj = ctx.ensure_object(dict)
    obj["url"] = database_url
    _registry(ctx)


def _registry(ctx: click.Context) -> Registry:
    """The registry of this invocation: the one passed in (``obj={"registry": ...}``, as
    :func:`main` and tests do), else one built by the factory on first use."""
    obj = ctx.find_root().ensure_object(dict)
    if "registry" not in obj:
        obj["registry"] = Registry.load()
    return obj["registry"]


@cli.command("channels")
@renders
@click.pass_context
def channels_command(ctx: click.Context) -> Output:
    """List the installed channels, what they support and require."""
    registry = _registry(ctx)
    return Output([registry.channels[n].describe() for n in sorted(registry.channels)], _channels)


def _channels(data: list[dict[str, Any]]) -> Iterator[str]:
    operations = list(data[0]["capabilities"]) if data else []
    yield from _table(
        ["CHANNEL", *(op.upper() for op in operations), "SHIPPING_MAPPINGS"],
        (
            [
                channel["name"],
                *(channel["capabilities"].get(op, "").replace("_", " ") for op in operations),
                channel["requirements"].get("shipping_mappings", ""),
            ]
            for channel in data
        ),
    )


@cli.command("plugins")
@renders
@click.pass_context
def plugins_command(ctx: click.Context) -> Output:
    """List the installed plugins: distribution, version, hooks implemented."""
    return Output([plugin.to_json() for plugin in _registry(ctx).plugins()], _plugins)


def _plugins(data: list[dict[str, Any]]) -> Iterator[str]:
    for plugin in data:
        where = " ".join(str(v) for v in (plugin["distribution"], plugin["version"]) if v)
        channel = f", channel {plugin['channel']}" if plugin["channel"] else ""
        yield f"{plugin['name']} ({where or 'no distribution'}{channel})"
        yield f"  hooks: {', '.join(plugin['hooks']) or 'none'}"


# --- connections ------------------------------------------------------------------------


@cli.group("connections")
def connections_group() -> None:
    """Add, configure, test and remove channel connections."""


def _connection(data: dict[str, Any]) -> Iterator[str]:
    yield f"{data['name']} ({data['channel']}), health: {data['health']}"
    if data.get("health_message"):
        yield f"  {data['health_message']}"
    for key, value in data["config"].items():
        yield f"  {key} = {value}"
    for key, value in data["settings"].items():
        yield f"  {key} = {value}  (setting)"


@connections_group.command("add")
@click.argument("name")
@click.option("--channel", required=True, help="The channel (see 'hub channels').")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", help="A connection value.")
@renders
@click.pass_context
def connections_add(
    ctx: click.Context, name: str, channel: str, values: tuple[str, ...]
) -> Output:
    """Add a connection NAME to a channel."""
    data = connection_service.add_connection(_hub(ctx), name, channel, _key_values(values, "--set"))
    return Output(
        data,
        lambda _: [
            f"Added connection {name!r} ({channel}). Check it with 'hub connections test {name}'."
        ],
    )


@connections_group.command("configure")
@click.argument("name")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", help="A value to change.")
@renders
@click.pass_context
def connections_configure(ctx: click.Context, name: str, values: tuple[str, ...]) -> Output:
    """Change a connection's values or settings."""
    data = connection_service.configure_connection(_hub(ctx), name, _key_values(values, "--set"))
    return Output(data, lambda _: [f"Updated connection {name!r}."])


@connections_group.command("list")
@renders
@click.pass_context
def connections_list(ctx: click.Context) -> Output:
    """List connections (secrets hidden)."""
    return Output(connection_service.list_connections(_hub(ctx)), _connections)


_connections = _rows(
    "No connections. Add one with 'hub connections add NAME --channel CHANNEL'.",
    ["NAME", "CHANNEL", "HEALTH", "NOTE"],
    lambda item: [
        item["name"],
        item["channel"],
        item["health"],
        f"must be reconnected, skipped until then: see 'hub connections show {item['name']}'"
        if item["needs_reauth"]
        else "",
    ],
)


@connections_group.command("show")
@click.argument("name")
@renders
@click.pass_context
def connections_show(ctx: click.Context, name: str) -> Output:
    """Show one connection (secrets hidden)."""
    return Output(connection_service.show_connection(_hub(ctx), name), _connection)


@connections_group.command("test")
@click.argument("name")
@renders
@click.pass_context
def connections_test(ctx: click.Context, name: str) -> Output:
    """Check that a connection works (credentials, account, settings)."""
    data = connection_service.check_connection(_hub(ctx), name)
    return Output(data, _checks, ExitCode.OK if data["ok"] else ExitCode.FAILED)


def _checks(data: dict[str, Any]) -> Iterator[str]:
    for check in data["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        yield f"{mark} {check['name']}" + (f": {check['message']}" if check["message"] else "")
    yield f"Connection {data['connection']!r} " + ("works." if data["ok"] else "does not work.")
    if data.get("reauth"):
        yield data["reauth"]


@connections_group.command("remove")
@click.argument("name")
@renders
@click.pass_context
def connections_remove(ctx: click.Context, name: str) -> Output:
    """Remove a connection and everything stored for it."""
    connection_service.remove_connection(_hub(ctx), name)
    return Output({"removed": name}, lambda _: [f"Removed connection {name!r}."])


# --- catalog --------------------------------------------------------------------------------


@cli.group("catalog")
def catalog_group() -> None:
    """The merchant's catalog: import, change, list."""


@catalog_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@renders
@click.pass_context
def catalog_import(ctx: click.Context, file: str) -> Output:
    """Import products from a .csv or .json FILE (sku,title,quantity,price[,upc,msrp,cost])."""
    return _operation(catalog_service.import_catalog(_hub(ctx), file), "catalog import")


@catalog_group.command("set")
@click.argument("sku")
@click.option("--quantity", metavar="N", help="New quantity, 0 to 2,147,483,647.")
@click.option("--price", metavar="P", help="New price, e.g. 19.99 (at most 2 decimals).")
@click.option("--title", help="New title.")
@renders
@click.pass_context
def catalog_set(
    ctx: click.Context, sku: str, quantity: str | None, price: str | None, title: str | None
) -> Output:
    """Change one product's quantity, price or title."""
    data = catalog_service.set_product(_hub(ctx), sku, quantity=quantity, price=price, title=title)
    return Output(data, lambda d: [f"{d['sku']}: quantity {d['quantity']}, price {d['price']}"])


@catalog_group.command("list")
@renders
@click.pass_context
def catalog_list(ctx: click.Context) -> Output:
    """List the catalog."""
    return Output(catalog_service.list_catalog(_hub(ctx)), _catalog)


_catalog = _rows(
    "The catalog is empty. Import products with 'hub catalog import FILE'.",
    ["SKU", "QUANTITY", "PRICE", "TITLE"],
    lambda i: [i["sku"], i["quantity"], i["price"], i["title"]],
    right={1, 2},
)


# --- listings -------------------------------------------------------------------------------


@cli.group("listings")
def listings_group() -> None:
    """Link catalog SKUs to channel products and keep them in sync."""


_sku_option = click.option(
    "--sku", "skus", multiple=True, metavar="SKU", callback=_no_empty, help="A catalog SKU."
)


def _sku_command(
    command: str,
    operation: Callable[..., OperationResult],
    summary: str,
    help_text: str,
    *,
    every_sku_by_default: bool = False,
) -> None:
    """Add ``hub listings COMMAND NAME [--sku SKU]...``: one operation on SKUs of a connection.

    :param every_sku_by_default: without ``--sku`` the operation picks its SKUs (link and
        publish: every SKU not yet linked); else it refuses an empty list itself.
    """

    @listings_group.command(command, help=help_text)
    @click.argument("name")
    @_sku_option
    @renders
    @click.pass_context
    def sku_command(ctx: click.Context, name: str, skus: tuple[str, ...]) -> Output:
        chosen = list(skus) or (None if every_sku_by_default else [])
        return _operation(operation(_hub(ctx), name, chosen), summary)


_sku_command(
    "link",
    listing_service.link_listings,
    "link",
    "Link SKUs to the channel's existing products (default: every SKU not yet linked).",
    every_sku_by_default=True,
)
_sku_command(
    "unlink", listing_service.unlink_listings, "unlink", "Unlink SKUs from their channel products."
)
_sku_command(
    "relink",
    listing_service.relink_listings,
    "relink",
    "Unlink and link again (the fix for a broken listing).",
)
_sku_command(
    "exclude",
    listing_service.exclude_listings,
    "exclude",
    "Keep SKUs off this connection (status excluded: never looked up, linked or synced).",
)
_sku_command(
    "include",
    listing_service.include_listings,
    "include",
    "Undo exclude: the SKUs are linked again by the next 'hub listings link'.",
)


@listings_group.command("list")
@click.argument("name")
@click.option(
    "--status",
    help="Only listings with this status: unlinked, linked, not_found, ambiguous, broken, "
    "unsupported or excluded.",
)
@renders
@click.pass_context
def listings_list(ctx: click.Context, name: str, status: str | None) -> Output:
    """List a connection's listings."""
    data = listing_service.list_listings(_hub(ctx), name, status)
    text = _rows(
        f"No listings{' with status ' + status if status else ''} for {name!r}.",
        ["SKU", "STATUS", "CHANNEL_PRODUCT_ID", "MESSAGE"],
        lambda i: [i["sku"], i["status"], i["channel_product_id"], i["message"]],
    )
    return Output(data, text)


@listings_group.command("sync")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="List what would be sent; change nothing.")
@renders
@click.pass_context
def listings_sync(ctx: click.Context, name: str, dry_run: bool) -> Output:
    """Push quantity and price changes made since the last sync."""
    result = listing_service.sync_listings(_hub(ctx), name, dry_run=dry_run)
    return _operation(result, "sync (dry run)" if dry_run else "sync")


_sku_command(
    "publish",
    listing_service.publish_listings,
    "publish",
    "Create new channel products for SKUs (where the channel supports it).",
    every_sku_by_default=True,
)


# --- shipping mappings ----------------------------------------------------------------------


@cli.group("shipping-mappings")
def mappings_group() -> None:
    """Map the channel's shipping methods to your shipping policies."""


@mappings_group.command("add")
@click.argument("name")
@click.option("--channel-text", required=True, help="The channel's shipping text, exactly.")
@click.option("--policy", required=True, help="Your shipping policy.")
@renders
@click.pass_context
def mappings_add(ctx: click.Context, name: str, channel_text: str, policy: str) -> Output:
    """Add a mapping; held orders with that shipping text are released."""
    data = shipping_service.add_mapping(_hub(ctx), name, channel_text, policy)
    return Output(data, functools.partial(_mapping_added, channel_text=channel_text, policy=policy))


def _mapping_added(data: dict[str, Any], channel_text: str, policy: str) -> Iterator[str]:
    yield f"Mapped {channel_text!r} to {policy!r}."
    if data["released_orders"]:
        yield (
            f"Released {len(data['released_orders'])} held order(s): "
            + ", ".join(data["released_orders"])
        )


@mappings_group.command("list")
@click.argument("name")
@renders
@click.pass_context
def mappings_list(ctx: click.Context, name: str) -> Output:
    """List a connection's mappings."""
    data = shipping_service.list_mappings(_hub(ctx), name)
    text = _rows(
        f"No shipping mappings for {name!r}. Add one with 'hub shipping-mappings add {name} "
        "--channel-text TEXT --policy POLICY'.",
        ["CHANNEL_TEXT", "POLICY"],
        lambda i: [i["channel_text"], i["policy"]],
    )
    return Output(data, text)


@mappings_group.command("remove")
@click.argument("name")
@click.option("--channel-text", required=True, help="The channel's shipping text, exactly.")
@renders
@click.pass_context
def mappings_remove(ctx: click.Context, name: str, channel_text: str) -> Output:
    """Remove a mapping."""
    shipping_service.remove_mapping(_hub(ctx), name, channel_text)
    return Output({"removed": channel_text}, lambda _: [f"Removed {channel_text!r}."])


# --- orders ---------------------------------------------------------------------------------


@cli.group("orders")
def orders_group() -> None:
    """Import orders, ship them, send tracking back."""


@orders_group.command("get")
@click.argument("name")
@click.option("--days", type=int, help="Only orders created in the last N days (this run).")
@renders
@click.pass_context
def orders_get(ctx: click.Context, name: str, days: int | None) -> Output:
    """Import new orders from the channel, each exactly once."""
    return _operation(order_service.get_orders(_hub(ctx), name, days), "get orders")


def _order_lines(order: dict[str, Any]) -> str:
    return ", ".join(f"{ln['sku']} x{ln['quantity']}" for ln in order["lines"])


@orders_group.command("list")
@click.option("--connection", help="Only this connection's orders.")
@click.option("--status", help="Only orders with this status.")
@renders
@click.pass_context
def orders_list(ctx: click.Context, connection: str | None, status: str | None) -> Output:
    """List stored orders."""
    return Output(order_service.list_orders(_hub(ctx), connection, status), _orders)


_orders = _rows(
    "No orders. Import them with 'hub orders get NAME'.",
    ["CONNECTION", "ORDER", "STATUS", "LINES", "HOLD_REASON"],
    lambda o: [
        o["connection"], o["channel_order_id"], o["status"], _order_lines(o), o["hold_reason"]
    ],
)


@orders_group.command("show")
@click.argument("name")
@click.argument("channel_order_id")
@renders
@click.pass_context
def orders_show(ctx: click.Context, name: str, channel_order_id: str) -> Output:
    """Show one order with its lines and shipments."""
    return Output(order_service.show_order(_hub(ctx), name, channel_order_id), _order)


def _order(data: dict[str, Any]) -> Iterator[str]:
    yield f"Order {data['channel_order_id']} on {data['connection']}: {data['status']}"
    if data["hold_reason"]:
        yield f"  held: {data['hold_reason']}"
    yield f"  shipping: {data['shipping_text']!r} -> {data['shipping_policy'] or '-'}"
    for line in data["lines"]:
        yield f"  {line['sku']}: {line['shipped_quantity']}/{line['quantity']} shipped"
    for shipment in data["shipments"]:
        yield (
            f"  {shipment['shipment_id']}: {shipment['carrier']} {shipment['class']} "
            f"{shipment['tracking']} ({shipment['sync_status']})"
            + (f" {shipment['sync_error']}" if shipment["sync_error"] else "")
        )


@orders_group.command("explain")
@click.argument("name")
@click.argument("channel_order_id")
@renders
@click.pass_context
def orders_explain(ctx: click.Context, name: str, channel_order_id: str) -> Output:
    """Say why the channel's order was, or would not be, imported."""
    return Output(order_service.explain_order(_hub(ctx), name, channel_order_id), _explanation)


def _explanation(data: dict[str, Any]) -> Iterator[str]:
    verdict = (
        "was imported"
        if data["imported"]
        else "would be imported"
        if data["would_import"]
        else "would NOT be imported"
    )
    yield f"Order {data['channel_order_id']} {verdict}:"
    for reason in data["reasons"]:
        yield f"  - {reason}"
    for note in data.get("notes", []):
        yield f"  note: {note}"


def _items(values: tuple[str, ...]) -> dict[str, int]:
    """``--item SKU=QTY`` options as SKU -> quantity (a SKU given twice adds up)."""
    items: dict[str, int] = {}
    for sku, quantity in _key_values(values, "--item", "TSHIRT-M=2").items():
        try:
            items[sku] = items.get(sku, 0) + parse_quantity(quantity)
        except ValueError as exc:
            raise InvalidInput(
                f"--item {sku}={quantity}: the quantity {exc}. Give --item SKU=QTY, "
                f"e.g. --item {sku}=2."
            ) from None
    return items


@orders_group.command("ship")
@click.argument("name")
@click.argument("channel_order_id")
@click.option("--tracking", required=True, help="Tracking number.")
@click.option("--carrier", required=True, help="Carrier, as the channel knows it (e.g. UPS).")
@click.option("--class", "shipping_class", required=True, help="Shipping class (e.g. Ground).")
@click.option("--item", "items", multiple=True, metavar="SKU=QTY", help="Ship only this much.")
@click.option("--shipped-at", help="ISO 8601 ship time (default: now).")
@renders
@click.pass_context
def orders_ship(
    ctx: click.Context,
    name: str,
    channel_order_id: str,
    tracking: str,
    carrier: str,
    shipping_class: str,
    items: tuple[str, ...],
    shipped_at: str | None,
) -> Output:
    """Record a shipment (all that is unshipped, or --item SKU=QTY for a partial one)."""
    when: datetime | None = shipment_service.parse_shipped_at(shipped_at) if shipped_at else None
    data = shipment_service.ship_order(
        _hub(ctx),
        name,
        channel_order_id,
        tracking=tracking,
        carrier=carrier,
        shipping_class=shipping_class,
        items=_items(items) or None,
        shipped_at=when,
    )
    return Output(
        data,
        lambda d: [
            f"Recorded {d['shipment_id']} for order {channel_order_id} "
            f"({d['order_status']}); send it with 'hub orders sync {name}'."
        ],
    )


@orders_group.command("sync")
@click.argument("name")
@renders
@click.pass_context
def orders_sync(ctx: click.Context, name: str) -> Output:
    """Send shipments not yet sent (failed ones again) to the channel."""
    return _operation(shipment_service.sync_orders(_hub(ctx), name), "sync orders")


@cli.group("shipments")
def shipments_group() -> None:
    """Record shipments in bulk; list, correct and cancel those not sent yet."""


@shipments_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@renders
@click.pass_context
def shipments_import(ctx: click.Context, name: str, file: str) -> Output:
    """Record shipments from a CSV FILE.

    Columns: channel_order_id,tracking,carrier,class[,sku,quantity,shipped_at].
    """
    return _operation(shipment_service.import_shipments(_hub(ctx), name, file), "shipments import")


def _shipment_line(shipment: dict[str, Any]) -> str:
    lines = ", ".join(f"{ln['sku']} x{ln['quantity']}" for ln in shipment["lines"])
    error = f"  [{shipment['sync_error']}]" if shipment["sync_error"] else ""
    return (
        f"{shipment['shipment_id']}\t{shipment['channel_order_id']}\t{shipment['sync_status']}\t"
        f"{shipment['carrier']} - {shipment['class']}\t{shipment['tracking']}\t"
        f"{shipment['shipped_at'][:19]}\t{lines}{error}"
    )


@shipments_group.command("list")
@click.argument("name")
@click.option(
    "--status",
    help="Only shipments with this sync status: pending, sent, failed or cancelled.",
)
@renders
@click.pass_context
def shipments_list(ctx: click.Context, name: str, status: str | None) -> Output:
    """List a connection's shipments and whether each was sent."""
    data = shipment_service.list_shipments(_hub(ctx), name, status)
    return Output(data, functools.partial(_shipments, name=name, status=status))


def _shipments(data: list[dict[str, Any]], name: str, status: str | None) -> Iterator[str]:
    if not data:
        _note(f"No shipments{f' with status {status}' if status else ''} on {name!r}.")
    for shipment in data:
        yield _shipment_line(shipment)


@shipments_group.command("edit")
@click.argument("name")
@click.argument("shipment_id")
@click.option("--tracking", help="The corrected tracking number.")
@click.option("--carrier", help="The corrected carrier, as the channel knows it (e.g. UPS).")
@click.option("--class", "shipping_class", help="The corrected shipping class (e.g. Ground).")
@click.option("--shipped-at", help="The corrected ISO 8601 ship time.")
@renders
@click.pass_context
def shipments_edit(
    ctx: click.Context,
    name: str,
    shipment_id: str,
    tracking: str | None,
    carrier: str | None,
    shipping_class: str | None,
    shipped_at: str | None,
) -> Output:
    """Correct a shipment not sent yet (pending or failed); the next sync sends it, once."""
    if shipped_at is not None and not shipped_at.strip():
        raise InvalidInput("--shipped-at must not be empty: give an ISO 8601 time.")
    when = shipment_service.parse_shipped_at(shipped_at) if shipped_at is not None else None
    data = shipment_service.edit_shipment(
        _hub(ctx),
        name,
        shipment_id,
        tracking=tracking,
        carrier=carrier,
        shipping_class=shipping_class,
        shipped_at=when,
    )
    return Output(
        data,
        lambda d: [
            _shipment_line(d),
            f"Corrected {d['shipment_id']}; send it with 'hub orders sync {name}'.",
        ],
    )


@shipments_group.command("cancel")
@click.argument("name")
@click.argument("shipment_id")
@renders
@click.pass_context
def shipments_cancel(ctx: click.Context, name: str, shipment_id: str) -> Output:
    """Cancel a shipment not sent yet; its quantities can be shipped again."""
    data = shipment_service.cancel_shipment_by_id(_hub(ctx), name, shipment_id)
    return Output(
        data,
        lambda d: [
            f"Cancelled {d['shipment_id']}; order {d['channel_order_id']} is "
            f"{d['order_status']} and its quantities can be shipped again."
        ],
    )


# --- run, runs ------------------------------------------------------------------------------


@cli.command("run")
@click.argument("name")
@renders
@click.pass_context
def run_command(ctx: click.Context, name: str) -> Output:
    """Run every supported operation of a connection, in order."""
    data, code = run_connection(_hub(ctx), name)
    return Output(data, _run, code)


def _step_summary(step: dict[str, Any]) -> str:
    """One line for one operation of ``hub run``: its counts, else why it did not run."""
    if step["status"] == "not_supported":
        return "the channel does not support it"
    if "counts" in step:
        text = _counts_text(step["counts"])
        return f"{text}; {step['message']}" if step.get("message") else text
    return step.get("message", "")


def _run(data: dict[str, Any]) -> Iterator[str]:
    """A ``hub run`` document as text: one line per operation, then the verdict."""
    yield from _table(
        ["OPERATION", "RUN", "STATUS", "SUMMARY"],
        (
            [
                step["operation"],
                step.get("run_id"),
                step["status"].replace("_", " "),
                _step_summary(step),
            ]
            for step in data["operations"]
        ),
        right={1},
    )
    yield f"{data['connection']}: {data['status']}."
    attention = [s for s in data["operations"] if s.get("run_id") and s["status"] != "ok"]
    if attention:
        yield f"Details: 'hub runs show {attention[0]['run_id']}'."


@cli.group("runs")
def runs_group() -> None:
    """What each operation did."""


@runs_group.command("list")
@click.option("--connection", help="Only this connection's runs.")
@renders
@click.pass_context
def runs_list(ctx: click.Context, connection: str | None) -> Output:
    """List the latest runs, newest first."""
    return Output(run_service.list_runs(_hub(ctx), connection), _runs)


_runs = _rows(
    "No runs yet.",
    ["RUN", "STARTED", "CONNECTION", "OPERATION", "STATUS", "COUNTS"],
    lambda r: [
        r["run_id"],
        r["started_at"][:19].replace("T", " "),
        r["connection"],
        r["operation"],
        r["status"],
        _counts_text(r["counts"]),
    ],
    right={0},
)


@runs_group.command("show")
@click.argument("run_id", type=click.IntRange(1, MAX_ID))
@renders
@click.pass_context
def runs_show(ctx: click.Context, run_id: int) -> Output:
    """Show one run with every record's outcome."""
    return Output(run_service.show_run(_hub(ctx), run_id), _run_report)


def _run_report(data: dict[str, Any]) -> Iterator[str]:
    """A stored run as a short report: what, when, how it ended, then every record."""
    started = datetime.fromisoformat(data["started_at"])
    finished = datetime.fromisoformat(data["finished_at"]) if data["finished_at"] else None
    took = f" ({(finished - started).total_seconds():.1f} s)" if finished else ""
    host = data["host"] or "-"
    facts = [
        ("connection", data["connection"] or "-"),
        ("status", data["status"]),
        ("started", f"{started:%Y-%m-%d %H:%M:%S} UTC by {data['trigger']} on {host}"),
        ("finished", f"{finished:%Y-%m-%d %H:%M:%S} UTC{took}" if finished else "not yet"),
        ("counts", _counts_text(data["counts"])),
    ]
    if data["message"]:
        facts.append(("message", data["message"]))
    yield f"Run {data['run_id']}: {data['operation']}"
    for label, value in facts:
        yield f"  {label:<10}  {value}"
    records = data["records"]
    if not records:
        yield "No records."
        return
    # Failures first: they are what a reader of the report has to act on.
    order = {"failed": 0, "skipped": 1}
    records = sorted(records, key=lambda r: order.get(r["outcome"], 2))
    yield f"\nRecords ({len(records)}, failed first):"
    yield from _table(
        ["OUTCOME", "REF", "MESSAGE"],
        ([r["outcome"], r["ref"], r["message"]] for r in records),
    )


# --- secrets --------------------------------------------------------------------------------


@cli.group("secrets")
def secrets_group() -> None:
    """The key that encrypts connection secrets at rest: where it is, rotating it."""


@secrets_group.command("status")
@renders
@click.pass_context
def secrets_status(ctx: click.Context) -> Output:
    """Say where the key comes from and how the connections' secrets are stored."""
    return Output(secret_service.status(_hub(ctx)), _secrets_status)


def _secrets_status(data: dict[str, Any]) -> Iterator[str]:
    key = data["key"]
    if key["source"] == "none":
        yield f"key:       none yet. {key['note']}"
    else:
        where = "environment variable" if key["source"] == "environment" else "key file"
        extra = f" ({key['keys']} keys; the first encrypts)" if key["keys"] > 1 else ""
        yield f"key:       {where} {key['location']}{extra}"
    yield (
        f"secrets:   {data['connections_encrypted']} of {data['connections']} connection(s) "
        "encrypted (Fernet)"
    )
    if data["connections_not_decryptable"]:
        names = ", ".join(data["connections_not_decryptable"])
        yield (
            f"NOT READABLE: {names}: the key is missing or not the one they were encrypted with "
            f"(looked in {key['looked_in']})"
        )
    if data["connections_with_plain_secrets"]:
        names = ", ".join(data["connections_with_plain_secrets"])
        yield f"plain:     {names}: encrypt with 'hub secrets rotate-key'"
    for label, info in (("key file", key["file"]), ("database", data["database_file"])):
        if info:
            note = "private" if info["private"] else f"readable by others: chmod 600 {info['path']}"
            yield f"{label + ':':10} {info['path']} (mode {info['mode']}, {note})"


@secrets_group.command("rotate-key")
@click.option(
    "--keep-old",
    is_flag=True,
    help="Keep the old key in the key file after the new one, to decrypt other databases.",
)
@renders
@click.pass_context
def secrets_rotate_key(ctx: click.Context, keep_old: bool) -> Output:
    """Re-encrypt every connection's secrets with a new key, in one transaction."""
    return Output(
        secret_service.rotate_key(_hub(ctx), keep_old=keep_old),
        lambda d: [
            f"Re-encrypted the secrets of {d['connections_reencrypted']} connection(s) "
            f"with the key from {d['key']['location']}. {d['note']}"
        ],
    )


# --- running at scale: worker, dispatch, schedule -------------------------------------------


def _scale_setup(ctx: click.Context) -> None:
    """Check the database (a clear error naming it) and hand its URL to the Celery processes
    through ``HUB_DATABASE_URL`` (a pool process or beat opens its own connections)."""
    db = Database(ctx.find_root().obj.get("url"))
    os.environ[DATABASE_ENV] = db.url
    db.dispose()


def _celery() -> Any:
    """The worker package, or a clear error when the ``worker`` extra is not installed."""
    try:
        from hub_core.worker import app as worker_app
    except ImportError as exc:
        raise HubError(
            f"Running at scale needs Celery ({exc}). Install it: pip install 'hub-core[worker]'."
        ) from None
    return worker_app


@cli.command("worker")
@click.option(
    "--concurrency", type=click.IntRange(1, 512), default=4, show_default=True,
    help="Operations run at once by this worker.",
)
@click.option(
    "--queues", metavar="Q[,Q]...", help="Queues to take tasks from (default HUB_QUEUE, else hub).",
)
@click.option(
    "--pool", type=click.Choice(["threads", "prefork", "solo"]), default="threads",
    show_default=True, help="Celery execution pool (operations wait on the network: threads).",
)
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.pass_context
def worker_command(
    ctx: click.Context, concurrency: int, queues: str | None, pool: str, loglevel: str
) -> None:
    """Start a Celery worker that runs dispatched and scheduled operations (HUB_BROKER_URL)."""
    worker_app = _celery()
    _scale_setup(ctx)
    os.environ["HUB_WORKER_CONCURRENCY"] = str(concurrency)  # sizes each process's pool
    app = worker_app.make_app()
    worker_app.check_broker(app)
    worker_app.check_shared_budget()
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queues or worker_app.queue_name()}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--hostname=hub-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
    )


@cli.command("dispatch")
@click.argument("name", required=False)
@click.option("--all", "all_connections", is_flag=True, help="Every connection.")
@click.option(
    "--operation", "operations", multiple=True,
    type=click.Choice(["link_listings", "sync_listings", "get_orders", "sync_orders"]),
    help="Only this operation (repeatable; default: every supported one, in order).",
)
@click.option("--wait", is_flag=True, help="Wait for the runs and print them like 'hub run'.")
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=3600.0, show_default=True,
    help="With --wait: give up after this many seconds.",
)
@renders
@click.pass_context
def dispatch_command(
    ctx: click.Context,
    name: str | None,
    all_connections: bool,
    operations: tuple[str, ...],
    wait: bool,
    timeout: float,
) -> Output:
    """Enqueue operations of connection NAME (or --all) for the workers."""
    if bool(name) == all_connections:
        raise InvalidInput("Give a connection NAME or --all (not both). Example: hub dispatch shop")
    worker_app = _celery()
    from hub_core.worker import dispatch

    planned, notes = dispatch.plan(_hub(ctx), name, operations)
    for text in notes:
        _note(text)
    if not planned:
        return Output([] if wait else {"enqueued": []}, _nothing_to_dispatch)
    dispatch.enqueue(worker_app.make_app(), planned, wait=wait)
    if not wait:
        tasks = [
            {"connection": p.connection, "operation": op, "task_id": r.id}
            for p in planned
            for op, r in zip(p.operations, p.results, strict=True)
        ]
        return Output({"enqueued": tasks}, _enqueued)
    documents = dispatch.collect(planned, timeout)
    code = max((c for _, c in documents), default=ExitCode.OK)
    if name:
        return Output(documents[0][0], _run, code)
    return Output([d for d, _ in documents], _runs_of_all, code)


def _nothing_to_dispatch(_data: Any) -> list[str]:
    _note("Nothing to dispatch.")  # a note, not output: stdout stays empty
    return []


def _enqueued(data: dict[str, Any]) -> Iterator[str]:
    for task in data["enqueued"]:
        yield f"enqueued {task['operation']:16} {task['connection']}  {task['task_id']}"


def _runs_of_all(documents: list[dict[str, Any]]) -> Iterator[str]:
    """``hub dispatch --all --wait`` as text: each connection's verdict, then its run."""
    for data in documents:
        yield f"{data['connection']}: {data['status']}"
        yield from _run(data)


@cli.command("schedule")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.pass_context
def schedule_command(ctx: click.Context, loglevel: str) -> None:
    """Run the scheduler (celery beat): each connection's operations at its intervals."""
    worker_app = _celery()
    _scale_setup(ctx)
    from hub_core.services.schedule import intervals
    from hub_core.worker.scheduler import refresh_seconds

    refresh = refresh_seconds()
    intervals({})  # a bad HUB_SCHEDULE_SCALE stops here (exit 2), not in every read
    app = worker_app.make_app()
    worker_app.check_broker(app)
    app.Beat(
        scheduler="hub_core.worker.scheduler:DatabaseScheduler",
        max_interval=refresh,
        loglevel=loglevel,
    ).run()


def main() -> None:
    """Console entry point."""
    warnings.simplefilter("always", PluginLoadWarning)
    warnings.showwarning = lambda message, *args, **kwargs: click.echo(
        f"Warning: {message}", err=True
    )
    try:
        registry = Registry.load()
    except HubError as exc:  # a broken plugin: say which, before click starts
        if "--json" in sys.argv[1:]:
            _dump({"error": {"code": int(exc.exit_code), "message": exc.message}})
        _out(f"Error: {exc.message}", err=True)
        sys.exit(int(exc.exit_code))
    cli.main(prog_name="hub", obj={"registry": registry})
