"""The plugin manager factory and the registry of channels.

Plugins are found only through entry points of the group ``hub`` (our own two as well).
``HUB_DISABLE_PLUGINS`` (a comma list of entry-point names) blocks plugins before they load.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from typing import Any

import pluggy
from marshmallow import Schema

from hub_core import hookspecs
from hub_core.channel import (
    NOT_SUPPORTED,
    OPERATIONS,
    OPTIONAL,
    REQUIRED,
    REQUIREMENTS,
    SUPPORTED,
)
from hub_core.errors import InvalidInput, NotSupported, PluginError, scrub

ENTRY_POINT_GROUP = hookspecs.PROJECT
DISABLE_ENV = "HUB_DISABLE_PLUGINS"

#: Hook names that declare a channel; every channel plugin implements all of them.
DECLARING_HOOKS = (
    "hub_channel_name",
    "hub_channel_capabilities",
    "hub_channel_requirements",
    "hub_connection_schema",
    "hub_settings_schema",
)
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
    for name in disabled_plugins():
        pm.set_blocked(name)
    try:
        for plugin, name in plugins:
            pm.register(plugin, name=name)
        if load_entrypoints:
            _load_entrypoints(pm)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"A hub plugin is broken: {exc}") from exc
    return pm


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


class Registry:
    """The installed channels and the one way to call an operation on one of them."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.channels: dict[str, Channel] = {}
        for impl in pm.hook.hub_channel_name.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            name = impl.function()
            if name in self.channels:
                raise PluginError(
                    f"Two plugins declare the channel {name!r}: "
                    f"{self.channels[name].plugin_name!r} and {plugin_name!r}. "
                    f"Disable one with {DISABLE_ENV}."
                )
            capabilities = _check_values(
                plugin_name,
                "hub_channel_capabilities",
                _declared(pm, "hub_channel_capabilities", impl.plugin),
                OPERATIONS,
                {SUPPORTED, NOT_SUPPORTED},
            )
            requirements = _check_values(
                plugin_name,
                "hub_channel_requirements",
                _declared(pm, "hub_channel_requirements", impl.plugin),
                REQUIREMENTS,
                {REQUIRED, OPTIONAL},
            )
            self.channels[name] = Channel(
                name=name,
                title=_optional(pm, "hub_channel_title", impl.plugin) or name,
                plugin=impl.plugin,
                plugin_name=plugin_name,
                capabilities=capabilities,
                requirements=requirements,
                connection_schema=_declared(pm, "hub_connection_schema", impl.plugin),
                settings_schema=_declared(pm, "hub_settings_schema", impl.plugin),
            )
        self._channel_plugins = [c.plugin for c in self.channels.values()]

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

    def call(self, channel: Channel, operation: str, **kwargs: Any) -> Any:
        """Call ``operation`` on ``channel``'s plugin only (plus every wrapper plugin).

        :raises NotSupported: the channel does not support the operation; nothing is called.
        """
        self.check_supported(channel, operation)
        others = [p for p in self._channel_plugins if p is not channel.plugin]
        caller = self.pm.subset_hook_caller(OPERATION_HOOKS[operation], remove_plugins=others)
        try:
            result = caller(**kwargs)
        except Exception as exc:
            connection = kwargs.get("connection")
            if connection is not None:
                scrub(exc, connection.secrets)
            raise
        if result is None:
            raise PluginError(
                f"The {channel.name} plugin returned nothing for {operation}: "
                f"it declares the operation supported but does not implement it."
            )
        return result

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add CLI commands."""
        self.pm.hook.hub_register_commands(cli=cli)
