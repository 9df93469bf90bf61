"""The plugin manager factory and the registry of channels.

Plugins are found only through entry points of the group ``hub`` (our own two as well).
``HUB_DISABLE_PLUGINS`` (a comma list of entry-point names) blocks plugins before they load.
``HUB_TRACE_PLUGINS=1`` prints every hook call, with the plugins it reached and its duration,
to stderr (pluggy's hook call monitoring).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib.metadata
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import click
import pluggy
from marshmallow import Schema

from hub_core import hookspecs, redaction
from hub_core.channel import (
    NOT_SUPPORTED,
    OPERATIONS,
    OPTIONAL,
    REQUIRED,
    REQUIREMENTS,
    SUPPORTED,
    ChannelDescription,
)
from hub_core.errors import InvalidInput, NeedsReauth, NotSupported, PluginError

ENTRY_POINT_GROUP = hookspecs.PROJECT
DISABLE_ENV = "HUB_DISABLE_PLUGINS"
TRACE_ENV = "HUB_TRACE_PLUGINS"

#: Operation -> the hook that carries it out.
OPERATION_HOOKS = {
    "test_connection": "hub_test_connection",
    "link_listings": "hub_link_listings",
    "sync_listings": "hub_sync_listings",
    "publish_listings": "hub_publish_listings",
    "get_orders": "hub_get_orders",
    "acknowledge_orders": "hub_acknowledge_orders",
    "sync_orders": "hub_sync_orders",
    "explain_order": "hub_explain_order",
}
#: Operation -> (what it does, what to do instead), for the exit-3 message.
_REFUSALS = {
    "publish_listings": (
        "Publishing new listings",
        "link to existing products instead (hub listings link NAME)",
    ),
    "link_listings": (
        "Linking existing listings",
        "publish new listings instead (hub listings publish NAME)",
    ),
    "sync_listings": ("Syncing listings", "manage quantity and price on the channel itself"),
    "get_orders": ("Getting orders", "import the channel's orders by other means"),
    "acknowledge_orders": ("Getting orders", "import the channel's orders by other means"),
    "explain_order": ("Getting orders", "import the channel's orders by other means"),
    "sync_orders": ("Syncing orders", "record shipments on the channel itself"),
}
#: Operations that exist for every channel whatever its capabilities say.
_ALWAYS = {"test_connection"}
#: Operations allowed when the capability named here is supported.
_IMPLIED_BY = {"acknowledge_orders": "get_orders", "explain_order": "get_orders"}


def disabled_plugins() -> set[str]:
    """Entry-point names listed in ``HUB_DISABLE_PLUGINS``."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def get_plugin_manager(
    *, load_entrypoints: bool = True, plugins: Iterable[tuple[object, str]] = ()
) -> pluggy.PluginManager:
    """Build a validated plugin manager.

    :param load_entrypoints: load the installed plugins of the ``hub`` group.
    :param plugins: extra ``(plugin, name)`` pairs to register (tests).
    :raises PluginError: a plugin implements a hook that does not exist, or a bad signature.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV, "").strip() not in ("", "0"):
        pm.add_hookcall_monitoring(*HookTracer().monitors())
    for name in disabled_plugins() - {CORE_PLUGIN}:
        pm.set_blocked(name)
    pm.register(_RunInsideTheCall(), name=CORE_PLUGIN)
    try:
        for plugin, name in plugins:
            pm.register(plugin, name=name)
        if load_entrypoints:
            _load_entrypoints(pm)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"A hub plugin is broken: {exc}") from exc
    return pm


#: The name of the core's own plugin (not listed by ``hub plugins``).
CORE_PLUGIN = "hub-core"
#: What the service does with the answer of the operation being called (see Registry.call).
_CONSUMER: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar(
    "hub_consumer", default=None
)


class _RunInsideTheCall:
    """The innermost wrapper of get orders: the service stores the channel's orders here, so
    every other wrapper sees the whole operation (fetching, storing, acknowledging), not only
    the creation of a generator."""

    @hookspecs.hookimpl(wrapper=True, trylast=True)
    def hub_get_orders(self) -> Generator[None, Any, Any]:
        """Hand the channel's answer to the service's consumer, inside the hook call."""
        answer = yield
        consume = _CONSUMER.get()
        if consume is not None and answer is not None:
            consume(answer)
        return answer


class HookTracer:
    """Prints each hook call to stderr: its name, the plugins it reached, how long it took.

    Never the arguments: they hold connections and their secrets.
    """

    def __init__(self) -> None:
        # Calls nest (a wrapper may call another hook) and runs may overlap in threads.
        self._local = threading.local()

    def monitors(self) -> tuple[Callable[..., None], Callable[..., None]]:
        """The ``before`` and ``after`` callables of ``add_hookcall_monitoring``."""
        return self._before, self._after

    def _starts(self) -> list[float]:
        if not hasattr(self._local, "starts"):
            self._local.starts = []
        return self._local.starts

    def _before(self, hook_name: str, hook_impls: Sequence[Any], kwargs: Any) -> None:
        self._starts().append(time.perf_counter())

    def _after(self, outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: Any) -> None:
        took = (time.perf_counter() - self._starts().pop()) * 1000
        plugins = ", ".join(impl.plugin_name for impl in hook_impls) or "no plugin"
        failed = outcome.exception
        end = f" raised {failed.__class__.__name__}" if failed is not None else ""
        print(f"hub trace: {hook_name} [{plugins}] {took:.1f} ms{end}", file=sys.stderr)


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    """Load each plugin of the ``hub`` group on its own, so one broken plugin is named and
    skipped instead of taking the whole CLI down."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=entry_point.name)
        except pluggy.PluginValidationError:
            raise
        except Exception as exc:
            warnings.warn(
                f"hub plugin {entry_point.name!r} ({entry_point.value}) could not be loaded and "
                f"is skipped: {exc.__class__.__name__}: {exc}. Reinstall it, or disable it with "
                f"{DISABLE_ENV}={entry_point.name}.",
                PluginLoadWarning,
                stacklevel=2,
            )


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported and was skipped."""


#: The advice of a channel that gives none: one command, naming no channel's keys.
DEFAULT_REAUTH_ADVICE = (
    "Give it new credentials with 'hub connections configure {name} --set KEY=VALUE' "
    "(its keys: 'hub connections show {name}')."
)


@dataclasses.dataclass(frozen=True)
class Channel:
    """A channel as declared by its plugin."""

    name: str
    title: str
    plugin: object
    plugin_name: str
    capabilities: dict[str, str]
    requirements: dict[str, str]
    connection_schema: type[Schema]
    settings_schema: type[Schema]
    reauth_advice: str = DEFAULT_REAUTH_ADVICE
    #: Environment variables whose values are secrets of every connection of the channel.
    secret_env: tuple[str, ...] = ()

    def supports(self, operation: str) -> bool:
        """Whether the channel supports ``operation`` (an OPERATION_HOOKS key)."""
        if operation in _ALWAYS:
            return True
        capability = _IMPLIED_BY.get(operation, operation)
        return self.capabilities.get(capability) == SUPPORTED

    def requires(self, requirement: str) -> bool:
        """Whether ``requirement`` (a REQUIREMENTS key) is required by the channel."""
        return self.requirements.get(requirement) == REQUIRED

    def describe(self) -> dict[str, Any]:
        """The channel's JSON shape for ``hub channels`` (contract)."""
        return {
            "name": self.name,
            "capabilities": {op: self.capabilities[op] for op in OPERATIONS},
            "requirements": {r: self.requirements[r] for r in REQUIREMENTS},
        }

    def reauth_message(self, connection_name: str, reason: str = "") -> str:
        """What a merchant reads when the connection must be reconnected: what happened (the
        plugin's words, when it said any) and ONE command, the channel's own advice."""
        what = reason.strip().rstrip(".") or f"{self.title} refused its credentials"
        advice = self.reauth_advice.replace("{name}", connection_name)
        return f"Connection {connection_name!r} must be reconnected: {what}. {advice}"


def _optional(pm: pluggy.PluginManager, hook_name: str, plugin: object) -> Any:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin is plugin:
            return impl.function()
    return None


def _declared(pm: pluggy.PluginManager, hook_name: str, plugin: object) -> Any:
    value = _optional(pm, hook_name, plugin)
    if value is None:
        raise PluginError(
            f"Plugin {pm.get_name(plugin)!r} declares a channel but does not implement {hook_name}."
        )
    return value


def _check_values(
    plugin_name: str, what: str, values: dict[str, str], keys: Iterable[str], allowed: set[str]
) -> dict[str, str]:
    if not isinstance(values, dict):
        raise PluginError(f"Plugin {plugin_name!r}: {what} must be a dict, got {values!r}.")
    missing = [k for k in keys if k not in values]
    bad = {k: v for k, v in values.items() if v not in allowed}
    if missing or bad:
        raise PluginError(
            f"Plugin {plugin_name!r}: {what} must give each of {', '.join(keys)} one of "
            f"{', '.join(sorted(allowed))}; missing {missing or 'none'}, invalid {bad or 'none'}."
        )
    return dict(values)


def _described_by_older_hooks(pm: pluggy.PluginManager, plugin: object) -> ChannelDescription:
    """The description of a channel declared with the older hooks, one value per hook."""
    plugin_name = pm.get_name(plugin) or repr(plugin)
    capabilities = _check_values(
        plugin_name,
        "hub_channel_capabilities",
        _declared(pm, "hub_channel_capabilities", plugin),
        OPERATIONS,
        {SUPPORTED, NOT_SUPPORTED},
    )
    requirements = _check_values(
        plugin_name,
        "hub_channel_requirements",
        _declared(pm, "hub_channel_requirements", plugin),
        REQUIREMENTS,
        {REQUIRED, OPTIONAL},
    )
    return ChannelDescription(
        name=_declared(pm, "hub_channel_name", plugin),
        title=_optional(pm, "hub_channel_title", plugin) or "",
        supports=[op for op in OPERATIONS if capabilities[op] == SUPPORTED],
        requires=[r for r in REQUIREMENTS if requirements[r] == REQUIRED],
        connection_schema=_declared(pm, "hub_connection_schema", plugin),
        settings_schema=_declared(pm, "hub_settings_schema", plugin),
    )


def _channel(plugin_name: str, plugin: object, description: Any) -> Channel:
    """Check a plugin's description of its channel, naming everything wrong at once."""
    if not isinstance(description, ChannelDescription):
        raise PluginError(
            f"Plugin {plugin_name!r}: hub_channel must return a hub_core.channel."
            f"ChannelDescription, got {description!r}."
        )
    d = description
    problems = []
    if not isinstance(d.name, str) or not d.name.strip():
        problems.append(f"name must be a word (what --channel takes), got {d.name!r}")
    if isinstance(d.supports, str) or isinstance(d.requires, str):
        problems.append("supports and requires are collections of names, not one string")
    else:
        if unknown := sorted(set(d.supports) - set(OPERATIONS)):
            problems.append(
                f"supports names unknown operations {unknown} ({', '.join(OPERATIONS)})"
            )
        if unknown := sorted(set(d.requires) - set(REQUIREMENTS)):
            problems.append(f"requires names unknown requirements {unknown}")
    for what in ("connection_schema", "settings_schema"):
        schema = getattr(d, what)
        if not (isinstance(schema, type) and issubclass(schema, Schema)):
            problems.append(f"{what} must be a marshmallow Schema class, got {schema!r}")
    if problems:
        raise PluginError(
            f"Plugin {plugin_name!r} describes its channel wrongly: " + "; ".join(problems) + "."
        )
    return Channel(
        name=d.name,
        title=d.title or d.name,
        plugin=plugin,
        plugin_name=plugin_name,
        capabilities={op: SUPPORTED if op in d.supports else NOT_SUPPORTED for op in OPERATIONS},
        requirements={r: REQUIRED if r in d.requires else OPTIONAL for r in REQUIREMENTS},
        connection_schema=d.connection_schema,
        settings_schema=d.settings_schema,
        reauth_advice=d.reauth_advice or DEFAULT_REAUTH_ADVICE,
        secret_env=tuple(d.secret_env),
    )


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """One installed plugin, as ``hub plugins`` lists it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str]
    channel: str | None

    def to_json(self) -> dict[str, Any]:
        """The plugin's JSON shape."""
        return dataclasses.asdict(self)


class Registry:
    """The installed channels and the one way to call an operation on one of them.

    Build it with :meth:`load` (the factory) and pass it along: the CLI keeps one per
    invocation, tests build their own.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.channels: dict[str, Channel] = {}
        described = {impl.plugin: impl.function for impl in pm.hook.hub_channel.get_hookimpls()}
        for impl in pm.hook.hub_channel_name.get_hookimpls():
            if impl.plugin in described:
                raise PluginError(
                    f"Plugin {impl.plugin_name!r} implements both hub_channel and "
                    "hub_channel_name: declare the channel with hub_channel only."
                )
            described[impl.plugin] = functools.partial(_described_by_older_hooks, pm, impl.plugin)
        for plugin, describe in described.items():
            plugin_name = pm.get_name(plugin) or repr(plugin)
            description = describe()
            channel = _channel(plugin_name, plugin, description)
            if channel.name in self.channels:
                raise PluginError(
                    f"Two plugins declare the channel {channel.name!r}: "
                    f"{self.channels[channel.name].plugin_name!r} and {plugin_name!r}. "
                    f"Disable one with {DISABLE_ENV}."
                )
            self.channels[channel.name] = channel
        self._channel_plugins = [c.plugin for c in self.channels.values()]
        self._commands: dict[str, click.Command] | None = None

    @classmethod
    def load(cls, **kwargs: Any) -> Registry:
        """Build the plugin manager (see :func:`get_plugin_manager`) and the registry."""
        return cls(get_plugin_manager(**kwargs))

    def channel(self, name: str) -> Channel:
        """The channel called ``name``.

        :raises InvalidInput: no installed plugin declares it.
        """
        try:
            return self.channels[name]
        except KeyError:
            known = ", ".join(sorted(self.channels)) or "none installed"
            raise InvalidInput(
                f"Unknown channel {name!r}. Installed channels: {known}. "
                "Install the channel's plugin, or check the name with 'hub channels'."
            ) from None

    def check_supported(self, channel: Channel, operation: str) -> None:
        """Refuse ``operation`` if the channel does not support it (before any plugin code).

        :raises NotSupported: exit 3, naming the channel, the operation and what to do.
        """
        if channel.supports(operation):
            return
        what, hint = _REFUSALS.get(
            operation,
            (operation.replace("_", " ").capitalize(), "see 'hub channels' for what it supports"),
        )
        raise NotSupported(f"{what} is not supported for {channel.title}: {hint}")

    def call(
        self,
        channel: Channel,
        operation: str,
        *,
        consume: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``operation`` on ``channel``'s plugin only (plus every wrapper plugin).

        :param consume: for get orders, what the service does with the channel's orders
            (store and acknowledge them); it runs inside the hook call, so that a wrapper
            around the hook sees the whole operation.
        :raises NotSupported: the channel does not support the operation; nothing is called.
        :raises NeedsReauth: the channel refused the credentials for good; the message adds
            the channel's advice (one command) to the plugin's words.
        """
        self.check_supported(channel, operation)
        return self.invoke(channel, operation, consume=consume, **kwargs)

    def invoke(
        self,
        channel: Channel,
        operation: str,
        *,
        consume: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """:meth:`call` for a caller that checked the capability already (a run context
        checks each operation once per run); the same errors otherwise."""
        others = [p for p in self._channel_plugins if p is not channel.plugin]
        caller = self.pm.subset_hook_caller(OPERATION_HOOKS[operation], remove_plugins=others)
        connection = kwargs.get("connection")
        # The plugin's boundary: its log records are masked with the connection's secrets, and
        # so is any error on its way out, whoever catches it (the CLI, a worker's retry).
        redactor = connection.redactor if connection is not None else redaction.current()
        consuming = _CONSUMER.set(consume)
        try:
            with redactor.active():
                result = caller(**kwargs)
        except Exception as exc:
            if isinstance(exc, NeedsReauth) and connection is not None:
                exc.message = channel.reauth_message(connection.name, exc.message)
                exc.args = (exc.message,)
            redactor.exception(exc)
            raise
        finally:
            _CONSUMER.reset(consuming)
        if result is None:
            raise PluginError(
                f"The {channel.name} plugin returned nothing for {operation}: "
                f"it declares the operation supported but does not implement it."
            )
        return result

    def commands(self) -> dict[str, click.Command]:
        """The commands the plugins add to ``hub`` (``hub_register_commands``), by name.

        They are collected on a group of their own, once per registry, so that two registries
        never share a command list.
        """
        if self._commands is None:
            collected = click.Group("hub")
            self.pm.hook.hub_register_commands(cli=collected)
            self._commands = dict(collected.commands)
        return self._commands

    def plugins(self) -> list[PluginInfo]:
        """The installed plugins (the core's own left out), by name: distribution, version,
        the hooks each implements and the channel it declares."""
        distributions = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        channels = {id(c.plugin): c.name for c in self.channels.values()}
        found = []
        for name, plugin in self.pm.list_name_plugin():
            if name == CORE_PLUGIN or plugin is None:
                continue
            dist = distributions.get(id(plugin))
            found.append(
                PluginInfo(
                    name=name,
                    distribution=dist.project_name if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    hooks=sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()),
                    channel=channels.get(id(plugin)),
                )
            )
        return sorted(found, key=lambda p: p.name)
