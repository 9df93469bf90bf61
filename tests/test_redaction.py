"""Redaction at the boundaries (issue 9, deliverable 6).

A careless channel plants its connection's secret (a schema secret field) and the operator's
secret (an environment variable its channel description declares) in everything it says: its
errors, its record messages, its log lines (a traceback too) and its check messages. Neither the
plugin nor the services mask anything; each boundary does — the hook call (exception text),
the run recorder (what runs, run records and listings keep), the CLI (text and ``--json``) and
the logging filter (every handler) — and the last test pins that they are the only places.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from marshmallow import Schema, fields

import hub_core
from hub_core import hookimpl
from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    ChannelDescription,
    ConnectionCheck,
    LinkResult,
    ListingStatus,
)
from hub_core.errors import ChannelError
from hub_core.redaction import MASK, Redactor, current

TOKEN = "tok-planted-6c1f9e2a"
OPERATOR_SECRET = "operator-secret-0d4b7e91"
OPERATOR_ENV = "HUB_LEAKY_OPERATOR_SECRET"
#: A secret the plugin learns during a call (a refreshed token) and tells the redactor.
LEARNED = "learned-token-7a3e5c09"
SECRETS = (TOKEN, OPERATOR_SECRET, LEARNED)

log = logging.getLogger("hub_leaky.plugin")


class LeakyConnectionSchema(Schema):
    class Meta:
        secret_fields = ("token",)

    account = fields.String(required=True)
    token = fields.String(required=True, load_only=True)


class LeakySettingsSchema(Schema):
    order_days = fields.Integer(load_default=7)


class Leaky:
    """A channel that says its secrets everywhere: errors, records, logs, checks."""

    def __init__(self, mode: str = "records") -> None:
        self.mode = mode

    @hookimpl
    def hub_channel(self) -> ChannelDescription:
        return ChannelDescription(
            name="leaky",
            connection_schema=LeakyConnectionSchema,
            settings_schema=LeakySettingsSchema,
            supports=("link_listings",),
            secret_env=(OPERATOR_ENV,),
        )

    @staticmethod
    def _said(connection: ChannelConnection) -> str:
        connection.redactor.add(LEARNED)
        return f"token {connection.config['token']} with {os.environ[OPERATOR_ENV]} {LEARNED}"

    @hookimpl
    def hub_test_connection(self, connection: ChannelConnection) -> list[ConnectionCheck]:
        log.warning("checking %s", self._said(connection))
        return [ConnectionCheck("leak", False, f"refused {self._said(connection)}")]

    @hookimpl
    def hub_link_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem]
    ) -> list[LinkResult]:
        said = self._said(connection)
        log.warning("linking with %s", said)
        try:
            raise ValueError(f"inner trouble: {said}")
        except ValueError:
            # The exception's text carries the secrets too (debug: the CLI shows no traceback).
            log.debug("a traceback", exc_info=True)
        if self.mode == "error":
            raise ChannelError(f"refused {said}", detail=f"GET /Products {said}")
        if self.mode == "crash":
            raise RuntimeError(f"unexpected {said}")
        return [LinkResult(i.sku, ListingStatus.NOT_FOUND, message=f"no {said}") for i in items]


def _hidden(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@pytest.fixture
def leaky_cli(
    hub_cli: Any, make_registry: Callable, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """The CLI with a connection ``s`` to a leaky channel in ``mode`` (set on the plugin)."""
    monkeypatch.setenv(OPERATOR_ENV, OPERATOR_SECRET)
    leaky = Leaky()
    registry = make_registry((leaky, "leaky"))

    def run(*args: str, **kwargs: Any) -> Any:
        return hub_cli(*args, registry=registry, **kwargs)

    run("connections", "add", "s", "--channel", "leaky",
        "--set", "account=a", "--set", f"token={TOKEN}")  # fmt: skip
    run.leaky = leaky  # type: ignore[attr-defined]
    run.json = lambda *a, **k: hub_cli.json(*a, registry=registry, **k)  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize("mode", ["records", "error", "crash"])
def test_a_secret_planted_by_a_plugin_is_masked_at_every_boundary(
    leaky_cli: Any,
    catalog_file: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
    db_snapshot: Callable,
    hub_cli: Any,
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky_cli.leaky.mode = mode
    leaky_cli("catalog", "import", str(catalog_file()))
    code = {"records": 0, "error": 1, "crash": 1}[mode]
    crash = mode == "crash"
    outputs = [
        leaky_cli("listings", "link", "s", code=code, internal_error=crash),
        leaky_cli("listings", "link", "s", "--json", code=code, internal_error=crash),
        leaky_cli("listings", "list", "s"),
        leaky_cli("listings", "list", "s", "--json"),
    ]
    runs = [r for r in leaky_cli.json("runs", "list") if r["operation"] == "link_listings"]
    assert len(runs) == 2
    for run in runs:
        outputs.append(leaky_cli("runs", "show", str(run["run_id"])))
        outputs.append(leaky_cli("runs", "show", str(run["run_id"]), "--json"))
    texts = [t for o in outputs for t in (o.stdout, o.stderr)]

    # CLI output (text and JSON) and the CLI's error messages: masked, the message kept.
    _hidden(*texts)
    said = f"token {MASK} with {MASK} {MASK}"
    if mode == "records":
        assert f"no {said}" in outputs[0].stdout and f"no {said}" in outputs[1].stdout
    elif mode == "error":
        assert f"refused {said}" in outputs[0].stderr
        assert f'"message": "refused {said}"' in outputs[1].stdout
    else:
        assert f"unexpected {said}" in outputs[0].stderr
    # The warning reached stderr through the CLI's handler, masked.
    assert f"linking with {said}" in outputs[0].stderr

    # Logs: every handler (here pytest's) sees the masked record, traceback included.
    _hidden(caplog.text)
    assert f"linking with {said}" in caplog.text
    assert f"inner trouble: {said}" in caplog.text

    # Run records: what runs, run records and listings keep.
    rows = db_snapshot(hub_cli.url)
    _hidden(repr(rows))
    assert said in repr(rows["runs"] if mode != "records" else rows["run_records"])


def test_check_messages_are_masked_where_the_cli_prints_them(leaky_cli: Any) -> None:
    text = leaky_cli("connections", "test", "s", code=1)
    data = leaky_cli("connections", "test", "s", "--json", code=1)
    _hidden(text.stdout, text.stderr, data.stdout, data.stderr)
    assert f"refused token {MASK} with {MASK} {MASK}" in text.stdout
    assert f"checking token {MASK} with {MASK} {MASK}" in text.stderr
    assert f'"message": "refused token {MASK} with {MASK} {MASK}"' in data.stdout


def test_an_error_leaves_the_hook_call_masked(
    make_registry: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Exception text is masked as the error leaves the plugin, whoever catches it next (a
    worker's retry, a test), with the secrets the core knows for the connection."""
    monkeypatch.setenv(OPERATOR_ENV, OPERATOR_SECRET)
    caplog.set_level(logging.WARNING)
    registry = make_registry((Leaky("error"), "leaky"))
    channel = registry.channel("leaky")
    connection = ChannelConnection(
        name="s",
        channel="leaky",
        config={"account": "a", "token": TOKEN},
        settings={},
        secret_keys=("token",),
        secret_env=channel.secret_env,
    )
    item = CatalogItem(sku="A", title="A", quantity=1, price=Decimal("1"))
    with pytest.raises(ChannelError) as caught:
        registry.call(channel, "link_listings", connection=connection, items=[item])
    error = caught.value
    _hidden(error.message, error.detail, *map(str, error.args), caplog.text)
    assert error.message == f"refused token {MASK} with {MASK} {MASK}"
    assert error.detail == f"GET /Products token {MASK} with {MASK} {MASK}"
    # Outside the call no redactor is active: a record made there is left alone.
    log.warning("after %s", TOKEN)
    assert f"after {TOKEN}" in caplog.text
    assert current().values() == []


def test_a_redactor_follows_values_that_change_and_masks_documents() -> None:
    config = {"token": "first-token"}
    redactor = Redactor(["fixed-secret"])
    redactor.follow(lambda: [config["token"]], key="connection")
    config["token"] = "refreshed-token"
    assert redactor.text("fixed-secret refreshed-token first-token") == "*** *** first-token"
    # The same key replaces a source: a hub opening a connection again keeps one source.
    redactor.follow(lambda: ["other-token"], key="connection")
    assert redactor.values() == ["fixed-secret", "other-token"]
    # A secret escaped by JSON would not match the serialized text: documents are masked first.
    redactor.add('q"uoted-secret')
    assert redactor.data({"a": ['q"uoted-secret', 3, {"k": "Bearer x"}]}) == {
        "a": ["***", 3, {"k": "Bearer x"}]
    }
    assert redactor.text("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redactor.text("--set access_token=...") == "--set access_token=..."  # a placeholder
    assert Redactor(["abc"]).text("abc") == "abc"  # too short to be told from ordinary text


#: Where the hub masks, by file, and how many masking calls each makes: the boundaries only.
BOUNDARIES = {
    "cli.py": 2,  # _out (text) and _dump (JSON)
    "plugins.py": 1,  # Registry.call: an error on its way out of the plugin
    "services/runs.py": 2,  # RunRecorder.clean (records, listing and shipment messages), errors
    "services/connections.py": 1,  # the connection's stored health message
}
_MASKING_CALL = re.compile(r"(?:redactor|redaction\.current\(\))\.(?:text|data|exception)\(")
_PLUGIN_MASKING = re.compile(r"\bredact\(|\.redact\b|\bscrub\(|" + _MASKING_CALL.pattern)


def test_masking_happens_at_the_boundaries_only() -> None:
    """The inner calls are gone: no plugin masks, and the core masks in its boundaries."""
    core = Path(hub_core.__file__).parent
    found = {}
    for path in sorted(core.rglob("*.py")):
        if path.name == "redaction.py":  # the redactor itself
            continue
        count = len(_MASKING_CALL.findall(path.read_text()))
        if count:
            found[path.relative_to(core).as_posix()] = count
    assert found == BOUNDARIES
    plugins = core.parent / "plugins"
    for package in ("channeladvisor/hub_channeladvisor", "fake_channel/hub_fake_channel"):
        for path in (plugins / package).rglob("*.py"):
            assert not _PLUGIN_MASKING.search(path.read_text()), path
