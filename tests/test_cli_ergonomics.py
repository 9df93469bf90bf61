"""Newcomer ergonomics (issue 15) and errors under ``--json`` (issue 11, deliverable 5).

Where the database lives (the hub's home, whatever the current directory), the note of the
command that creates it, and one JSON error document on stdout for every command given
``--json`` that fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from hub_core.cli import cli
from hub_core.home import hub_home


def _invoke(*args: str) -> Result:
    """``hub ARGS`` in-process, with the environment the test set."""
    obj: dict[str, Any] = {}
    result = CliRunner().invoke(cli, list(args), obj=obj, catch_exceptions=False)
    if "hub" in obj:
        obj["hub"].db.dispose()
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``HUB_HOME`` in a fresh directory (not created yet); no ``HUB_DATABASE_URL``."""
    path = tmp_path / "home"
    monkeypatch.setenv("HUB_HOME", str(path))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    return path


# --- where the database lives -------------------------------------------------------------


def test_the_default_database_is_in_the_hubs_home_whatever_the_directory(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    created = _invoke("catalog", "list", "--json")
    assert created.exit_code == 0, created.output
    assert (home / "hub.db").is_file()
    assert created.stderr == f"Created the hub database at {home / 'hub.db'}.\n"
    assert created.stdout.strip() == "[]"

    monkeypatch.chdir(second)
    _invoke("catalog", "set", "X", "--quantity", "1")  # exit 2, no such SKU: nothing written
    added = _invoke("connections", "add", "shop", "--channel", "fake", "--set", "store=s.json")
    assert added.exit_code == 0, added.output
    assert "Created" not in added.stderr  # the same database, found from another directory
    monkeypatch.chdir(first)
    assert [c["name"] for c in json.loads(_invoke("connections", "list", "--json").stdout)] == [
        "shop"
    ]
    assert not list(first.iterdir()) and not list(second.iterdir())


def test_without_hub_home_the_home_is_the_users_app_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_HOME", raising=False)
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_home() == Path(click.get_app_dir("hub"))
    result = _invoke("catalog", "list")
    assert result.exit_code == 0, result.output
    assert (Path(click.get_app_dir("hub")) / "hub.db").is_file()
    assert str(Path(click.get_app_dir("hub")) / "hub.db") in result.stderr


def test_a_database_url_wins_over_the_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "given.db"
    result = _invoke("--database-url", f"sqlite:///{given}", "catalog", "list")
    assert result.exit_code == 0 and given.is_file()
    assert result.stderr == f"Created the hub database at {given}.\n"
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert _invoke("catalog", "list").exit_code == 0
    assert (tmp_path / "env.db").is_file()
    assert not home.exists()  # the home is only made for the default database


# --- errors under --json ------------------------------------------------------------------


def _error_document(result: Result) -> dict[str, Any]:
    """The one JSON document on stdout of a failed command, checked against stderr."""
    document = json.loads(result.stdout)  # exactly one document, or this raises
    assert set(document) == {"error"}, document
    assert document["error"]["code"] == result.exit_code != 0
    message = document["error"]["message"]
    assert message and message in result.stderr  # the human message is on stderr too
    return document["error"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        pytest.param(("orders", "get", "--json"), 2, "Missing argument 'NAME'", id="missing-arg"),
        pytest.param(("orders", "get", "shop", "--days", "x", "--json"), 2, "'x'", id="bad-int"),
        pytest.param(("orders", "get", "nope", "--json"), 2, "No connection named", id="hub"),
        pytest.param(("runs", "show", "999", "--json"), 2, "No run with id 999", id="not-found"),
        pytest.param(("--bogus", "catalog", "list", "--json"), 2, "--bogus", id="root-level"),
        pytest.param(("nosuch", "--json"), 2, "No such command", id="no-such-command"),
    ],
)
def test_a_failed_command_given_json_prints_one_error_document(
    hub_cli: Any, args: tuple[str, ...], code: int, words: str
) -> None:
    result = hub_cli(*args, code=code)
    assert words in _error_document(result)["message"]


def test_an_internal_error_under_json_is_a_document_too(
    hub_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub_core.services import catalog as catalog_service

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom refresh_token=abc123")

    monkeypatch.setattr(catalog_service, "list_catalog", broken)
    error = _error_document(hub_cli("catalog", "list", "--json", code=1, internal_error=True))
    assert "Internal error: RuntimeError: boom" in error["message"]
    assert "abc123" not in error["message"]


def test_an_operation_that_fails_after_its_run_started_prints_its_run_with_the_error(
    cli_shop: Any, store: Any, catalog_file: Any
) -> None:
    cli_shop("catalog", "import", str(catalog_file()))
    store.fail("link_listings", times=1)
    result = cli_shop("listings", "link", "shop", "--json", code=1)
    document = json.loads(result.stdout)
    assert document["status"] == "failed" and document["run_id"]
    assert document["error"]["code"] == 1
    assert document["error"]["message"] in result.stderr


def _json_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _json_commands(command, (*path, name))
        elif command is not None and any(p.name == "as_json" for p in command.params):
            yield (*path, name)


def test_every_command_that_takes_json_answers_a_usage_error_in_json(hub_cli: Any) -> None:
    commands = list(_json_commands(cli))
    assert ("orders", "get") in commands and ("runs", "show") in commands
    assert len(commands) >= 25
    for command in commands:
        result = hub_cli(*command, "--json", "--no-such-option", code=2)
        assert "--no-such-option" in _error_document(result)["message"], command


def test_without_json_a_failure_prints_nothing_on_stdout(hub_cli: Any) -> None:
    result = hub_cli("orders", "get", "nope", code=2)
    assert result.stdout == "" and "No connection named 'nope'" in result.stderr


def test_a_broken_plugin_under_json_is_one_error_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hub_core.cli as cli_module
    from hub_core.errors import PluginError

    def broken(**_kwargs: Any) -> None:
        raise PluginError("Plugin 'acme' implements hub_link_listing, which is no hook.")

    monkeypatch.setattr(cli_module.Registry, "load", broken)
    monkeypatch.setattr("sys.argv", ["hub", "channels", "--json"])
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    out, err = capsys.readouterr()
    assert exited.value.code == 1
    assert json.loads(out) == {
        "error": {
            "code": 1,
            "message": "Plugin 'acme' implements hub_link_listing, which is no hook.",
        }
    }
    assert "Plugin 'acme'" in err
