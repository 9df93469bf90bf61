"""The sandbox's entry point (group ``hub``): it declares no channel, only commands.

It adds ``hub channeladvisor sandbox`` (a local ChannelAdvisor stand-in to try things
against) and ``hub demo`` (the whole story against it).
"""

from __future__ import annotations

import click

from hub_core import hookimpl


@hookimpl
def hub_register_commands(cli: click.Group) -> None:
    """Add ``hub channeladvisor sandbox`` and ``hub demo``."""
    from .cli import channeladvisor, sandbox_command
    from .demo import demo_command

    existing = cli.commands.get("channeladvisor")
    if isinstance(existing, click.Group):  # another plugin owns the group: join it
        existing.add_command(sandbox_command, "sandbox")
    else:
        cli.add_command(channeladvisor, "channeladvisor")
    cli.add_command(demo_command, "demo")
