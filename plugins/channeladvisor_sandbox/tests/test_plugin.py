"""The sandbox is its own distribution: it adds its commands, and the production plugin
needs none of its dependencies."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

import click
from click.testing import CliRunner

from hub_channeladvisor_sandbox import plugin
from hub_core.cli import cli as hub_cli


def test_the_sandbox_adds_its_commands_under_the_channel_name() -> None:
    @click.group()
    def cli() -> None:
        pass

    plugin.hub_register_commands(cli=cli)
    assert "sandbox" in cli.commands["channeladvisor"].commands
    assert "demo" in cli.commands


def test_the_sandbox_joins_a_channeladvisor_group_another_plugin_made() -> None:
    @click.group()
    def cli() -> None:
        pass

    @cli.group("channeladvisor")
    def own() -> None:
        pass

    @own.command("other")
    def other() -> None:
        pass

    plugin.hub_register_commands(cli=cli)
    assert set(cli.commands["channeladvisor"].commands) == {"other", "sandbox"}


def test_hub_lists_the_sandbox_commands_through_the_entry_point() -> None:
    result = CliRunner().invoke(hub_cli, ["channeladvisor", "sandbox", "--help"])
    assert result.exit_code == 0, result.output
    assert "--products" in result.output


def test_the_production_plugin_depends_on_neither_werkzeug_nor_odata_query() -> None:
    needed = " ".join(requires("hub-channeladvisor") or []).lower()
    assert "werkzeug" not in needed
    assert "odata" not in needed
    assert "sandbox" not in needed


def test_importing_the_production_plugin_loads_no_sandbox_code() -> None:
    code = (
        "import sys, hub_channeladvisor.plugin, hub_channeladvisor.client;"
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in {'werkzeug', 'odata_query', 'hub_channeladvisor_sandbox'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sandbox_server_never_imports_the_client() -> None:
    code = (
        "import sys, hub_channeladvisor_sandbox, hub_channeladvisor_sandbox.cli;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'hub_channeladvisor');"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
