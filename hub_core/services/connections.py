"""Connections: add, configure, show, remove, test; and the view a plugin gets of one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_core.channel import ChannelConnection, Progress
from hub_core.crypto import is_encrypted, plain_secrets
from hub_core.errors import InvalidInput, NotFound
from hub_core.models import Connection
from hub_core.plugins import Channel
from hub_core.services.context import HEALTH_NEEDS_REAUTH, Hub, RunContext
from hub_core.services.schedule import (
    SCHEDULE_DEFAULTS,
    ScheduleSettingsSchema,
    schedule_settings,
    split_settings,
)


def secret_keys(schema_cls: type[Schema]) -> tuple[str, ...]:
    """Fields of a connection schema that must never be printed."""
    declared = getattr(getattr(schema_cls, "Meta", None), "secret_fields", ())
    load_only = tuple(n for n, f in schema_cls._declared_fields.items() if f.load_only)
    return tuple(dict.fromkeys((*declared, *load_only)))


def hidden_keys(schema_cls: type[Schema]) -> tuple[str, ...]:
    """Fields the plugin keeps for itself (e.g. a token's expiry): never shown, never --set."""
    declared = getattr(getattr(schema_cls, "Meta", None), "hidden_fields", ())
    marked = tuple(n for n, f in schema_cls._declared_fields.items() if f.metadata.get("hidden"))
    return tuple(dict.fromkeys((*declared, *marked)))


def _field_names(schema_cls: type[Schema]) -> list[str]:
    hidden = hidden_keys(schema_cls)
    return [
        n for n, f in schema_cls._declared_fields.items() if not f.dump_only and n not in hidden
    ]


def _problems(schema_cls: type[Schema], values: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Load ``values``; return what loaded and every problem (missing keys first, then bad
    values), so one message can name them all."""
    try:
        return dict(schema_cls().load(dict(values))), []
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        missing, problems = [], []
        for key, errs in messages.items():
            texts = [str(e) for e in (errs if isinstance(errs, list) else [errs])]
            if key != "_schema" and any("Missing data for required field" in t for t in texts):
                missing.append(key)
            else:
                problems.append(
                    "; ".join(texts) if key == "_schema" else f"{key}: {'; '.join(texts)}"
                )
        if missing:
            problems.insert(
                0,
                f"missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
                "give each with --set KEY=VALUE",
            )
        return {}, problems


def _load(schema_cls: type[Schema], values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Validate ``values`` with the schema, naming every problem at once."""
    loaded, problems = _problems(schema_cls, values)
    if problems:
        raise InvalidInput(f"Invalid {what}:", errors=problems)
    return loaded


def split_values(channel: Channel, values: Mapping[str, str]) -> tuple[dict, dict]:
    """Split ``--set`` values into connection values and settings; refuse unknown keys."""
    config_keys = _field_names(channel.connection_schema)
    # The scheduler's settings are the core's: every connection takes them.
    setting_keys = _field_names(channel.settings_schema) + list(SCHEDULE_DEFAULTS)
    unknown = [k for k in values if k not in config_keys and k not in setting_keys]
    if unknown:
        raise InvalidInput(
            f"Unknown key{'s' if len(unknown) > 1 else ''} for channel {channel.name}: "
            f"{', '.join(unknown)}. Valid keys: {', '.join(config_keys)} (connection); "
            f"{', '.join(setting_keys)} (settings)."
        )
    config = {k: v for k, v in values.items() if k in config_keys}
    settings = {k: v for k, v in values.items() if k in setting_keys}
    return config, settings


def _validate(channel: Channel, config: dict[str, Any], settings: dict[str, Any]) -> tuple:
    loaded_config, config_problems = _problems(channel.connection_schema, config)
    channel_settings, schedule = split_settings(settings)
    loaded_settings, setting_problems = _problems(channel.settings_schema, channel_settings)
    loaded_schedule, schedule_problems = _problems(ScheduleSettingsSchema, schedule)
    loaded_settings.update(loaded_schedule)
    problems = config_problems + [f"setting {p}" for p in setting_problems + schedule_problems]
    if problems:
        raise InvalidInput(f"Invalid values for a {channel.title} connection:", errors=problems)
    # Store only what was given (typed): defaults such as environment fallbacks are applied
    # again at each use, so changing the environment takes effect.
    stored = {k: _jsonable(loaded_config[k]) for k in config if k in loaded_config}
    stored_settings = {k: _jsonable(loaded_settings[k]) for k in settings if k in loaded_settings}
    return stored, stored_settings


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def get_connection(session: Session, name: str) -> Connection:
    """The connection called ``name``, or exit 2 naming it."""
    connection = session.scalar(select(Connection).where(Connection.name == name))
    if connection is None:
        raise NotFound(
            f"No connection named {name!r}. See 'hub connections list', or add one with "
            f"'hub connections add {name} --channel CHANNEL --set KEY=VALUE'."
        )
    return connection


def add_connection(hub: Hub, name: str, channel_name: str, values: Mapping[str, str]) -> dict:
    """Add a connection after validating every value; nothing is stored on error."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("A connection name must be 1 to 200 characters.")
    channel = hub.registry.channel(channel_name)
    config, settings = _validate(channel, *split_values(channel, values))
    # Sealed before the transaction: the first seal may look for secrets in the database.
    config = hub.db.secrets.seal(config, secret_keys(channel.connection_schema))
    with hub.db.session() as session:
        if session.scalar(select(Connection.id).where(Connection.name == name)) is not None:
            raise InvalidInput(
                f"A connection named {name!r} exists already. Choose another name, or change "
                f"it with 'hub connections configure {name} --set KEY=VALUE'."
            )
        row = Connection(name=name, channel=channel.name, config=config, settings=settings)
        session.add(row)
        session.flush()
        return describe(hub, row)


def configure_connection(hub: Hub, name: str, values: Mapping[str, str]) -> dict:
    """Change connection values or settings; new credentials clear ``needs_reauth``."""
    if not values:
        raise InvalidInput("Nothing to change: give at least one --set KEY=VALUE.")
    with hub.db.session() as session:
        channel = hub.registry.channel(get_connection(session, name).channel)
    if secret_keys(channel.connection_schema):
        # Load (or create) the key before the transaction: that may read the database.
        hub.db.secrets.keyring(create=True)
    with hub.db.session() as session:
        row = get_connection(session, name)
        new_config, new_settings = split_values(channel, values)
        kept = {k: v for k, v in row.config.items() if k not in new_config}
        if new_config:
            # New credentials: forget what the plugin derived from the old ones.
            hidden = hidden_keys(channel.connection_schema)
            kept = {k: v for k, v in kept.items() if k not in hidden}
        # Only the values kept are decrypted: new tokens can replace ones whose key is lost.
        kept = hub.db.secrets.open(kept, f"connection {name!r}")
        config, settings = _validate(
            channel, {**kept, **new_config}, {**row.settings, **new_settings}
        )
        row.config = hub.db.secrets.seal(config, secret_keys(channel.connection_schema))
        row.settings = settings
        if new_config:
            row.health = "unknown"
            row.health_message = ""
        return describe(hub, row)


def remove_connection(hub: Hub, name: str) -> None:
    """Remove a connection and everything stored for it (listings, orders, mappings)."""
    with hub.db.session() as session:
        session.delete(get_connection(session, name))


def describe(hub: Hub, row: Connection) -> dict[str, Any]:
    """A connection's JSON shape, secrets shown only as set/not set."""
    channel = hub.registry.channels.get(row.channel)
    secrets = secret_keys(channel.connection_schema) if channel else ()
    own, _ = split_settings(row.settings)
    settings: dict[str, Any] = dict(own)
    if channel:
        with contextlib.suppress(ValidationError):
            settings = channel.settings_schema().dump(channel.settings_schema().load(own))
    settings.update(schedule_settings(row.settings))
    hidden = hidden_keys(channel.connection_schema) if channel else ()
    config = {
        k: ("***" if k in secrets or is_encrypted(v) else v)
        for k, v in row.config.items()
        if k not in hidden
    }
    return {
        "name": row.name,
        "channel": row.channel,
        "config": config,
        "settings": settings,
        "health": row.health,
        "health_message": row.health_message,
        # Operations and the scheduler skip it until it is reconnected.
        "needs_reauth": row.health == HEALTH_NEEDS_REAUTH,
        # The scheduler skips a connection that must be reconnected until it is fixed.
        "scheduled": row.health != HEALTH_NEEDS_REAUTH,
        "created_at": row.created_at.isoformat(),
    }


def list_connections(hub: Hub) -> list[dict[str, Any]]:
    """Every connection, by name."""
    with hub.db.session() as session:
        rows = session.scalars(select(Connection).order_by(Connection.name))
        return [describe(hub, row) for row in rows]


def show_connection(hub: Hub, name: str) -> dict[str, Any]:
    """One connection, secrets hidden."""
    with hub.db.session() as session:
        return describe(hub, get_connection(session, name))


def open_run(
    hub: Hub,
    name: str,
    operation: str | None = None,
    progress: Progress | None = None,
    *,
    needing_reauth: bool = False,
    context: RunContext | None = None,
) -> RunContext:
    """Resolve a connection for one run, once: its row, its channel, its values and settings
    validated by the channel's schemas (the one place that applies defaults), its secrets.

    :param operation: the operation the run carries out (an ``OPERATION_HOOKS`` key),
        refused at once when the channel does not support it.
    :param needing_reauth: open a connection marked ``needs_reauth`` too (its test).
    :param context: a context opened earlier for this connection (``hub run``): returned for
        this run after the same checks (health, capability), nothing read again.
    :raises NeedsReauth: the channel refused the refresh token earlier; nothing is sent.
    """
    if context is not None:
        context.check_health()
        if operation is not None:
            context.require(operation)
        if progress is not None:
            context.connection.progress = progress
        return context
    with hub.db.session() as session:
        row = get_connection(session, name)
    channel = hub.registry.channel(row.channel)
    secrets = secret_keys(channel.connection_schema)

    def save_config(updates: dict[str, Any]) -> None:
        with hub.db.session() as s:
            stored = s.get(Connection, row.id)
            assert stored is not None
            changed = {k: _jsonable(v) for k, v in updates.items()}
            stored.config = hub.db.secrets.seal({**stored.config, **changed}, secrets)

    def set_health(state: str, message: str) -> None:
        clean = view.redactor.text(message)  # stored: masked
        with hub.db.session() as s:
            stored = s.get(Connection, row.id)
            assert stored is not None
            stored.health = state
            stored.health_message = clean
        context.health_message = clean

    # The plugin's view comes first, so that a refusal below reads its health like any other.
    view = ChannelConnection(
        name=row.name,
        channel=row.channel,
        config={},
        settings={},
        health=row.health,
        secret_keys=secrets,
        secret_env=channel.secret_env,
        progress=progress or hub.progress(name),
        on_save_config=save_config,
        on_health=set_health,
    )
    # What the hub prints or stores is masked with it (one source per connection name).
    hub.redactor.include(view.redactor, key=("connection", row.name))
    context = RunContext(
        hub=hub,
        row=row,
        channel=channel,
        connection=view,
        health_message=row.health_message,
        needing_reauth=needing_reauth,
    )
    context.check_health()
    stored_config = hub.db.secrets.open(row.config, f"connection {name!r}")
    view.config = _load(channel.connection_schema, stored_config, f"connection values of {name!r}")
    # The plugin sees its own settings only; the schedule's are the core's.
    own_settings, _ = split_settings(row.settings)
    view.settings = _load(channel.settings_schema, own_settings, f"settings of {name!r}")
    if secrets:
        # save_config seals inside a transaction: load (or create) the key before any.
        hub.db.secrets.keyring(create=True)
    if plain_secrets(row.config, secrets):
        # Left in plain text (its plugin was not installed when the database was migrated).
        with hub.db.session() as s:
            stored = s.get(Connection, row.id)
            assert stored is not None
            stored.config = hub.db.secrets.seal(stored.config, secrets)
    if operation is not None:
        context.require(operation)
    return context


def check_connection(hub: Hub, name: str) -> dict[str, Any]:
    """Ask the channel to check the connection; record ``ok`` or ``failing`` health.

    A connection marked ``needs_reauth`` is checked too (that is how new credentials are
    tried): passing checks mark it ``ok``; while the channel still refuses, it stays marked
    and the result says how to reconnect it (``reauth``).
    """
    with open_run(hub, name, "test_connection", needing_reauth=True) as context:
        view = context.connection
        checks = context.call("test_connection")
    ok = all(check.ok for check in checks)
    if ok or view.health != HEALTH_NEEDS_REAUTH:
        view.set_health("ok" if ok else "failing", "" if ok else "a connection check failed")
    result = {
        "connection": view.name,
        "ok": ok,
        "checks": [
            {"name": c.name, "ok": c.ok, "message": c.message} for c in checks
        ],
    }
    if view.health == HEALTH_NEEDS_REAUTH:
        result["reauth"] = context.channel.reauth_message(view.name, context.row.health_message)
    return result


__all__ = [
    "add_connection",
    "check_connection",
    "configure_connection",
    "list_connections",
    "open_run",
    "remove_connection",
    "show_connection",
]
