"""The README's "Writing a channel plugin" guide documents every hook and the whole harness.

Like datasette's ``test_plugin_hooks_are_documented``: adding a hook (or a harness method)
without documenting it fails here.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from hub_core import hookspecs
from hub_core.plugins import Registry, get_plugin_manager
from hub_core.testing import ChannelHarness

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- plugin-guide:start -->", "<!-- plugin-guide:end -->"


def guide() -> str:
    """The text between the plugin-guide markers."""
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "the README lost its plugin-guide markers"
    return text[text.index(START) + len(START) : text.index(END)]


def hookspec_names() -> list[str]:
    """Every hook declared in hub_core.hookspecs."""
    marker = f"{hookspecs.PROJECT}_spec"
    return [
        name
        for name, value in vars(hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, marker)
    ]


def signature(name: str) -> str:
    """``hub_link_listings(connection, items)``: the hook as the guide must spell it."""
    params = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(params)})"


def documented_hooks() -> dict[str, str]:
    """Hook headings of the guide: name -> the signature written there."""
    found = {}
    for line in guide().splitlines():
        match = re.match(r"^#+\s+`((hub_\w+)\([^)]*\))`\s*$", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def test_hookspecs_are_found() -> None:
    assert len(hookspec_names()) >= 10
    assert "hub_sync_orders" in hookspec_names()


@pytest.mark.parametrize("name", hookspec_names())
def test_plugin_hooks_are_documented(name: str) -> None:
    """Each hook has a heading in the guide that is its exact signature."""
    documented = documented_hooks()
    assert name in documented, f"the README's plugin guide has no heading for {name}"
    assert documented[name] == signature(name), (
        f"the guide documents {documented[name]} but the hook is {signature(name)}"
    )


def test_guide_documents_no_unknown_hook() -> None:
    """Every hook heading in the guide is a real hook."""
    unknown = sorted(set(documented_hooks()) - set(hookspec_names()))
    assert not unknown, f"the guide documents hooks that do not exist: {unknown}"


def harness_members() -> list[str]:
    """The public methods and class attributes of a harness."""
    methods = {n for n, v in vars(ChannelHarness).items() if not n.startswith("_") and callable(v)}
    return sorted(methods | set(ChannelHarness.__annotations__))


@pytest.mark.parametrize("member", harness_members())
def test_harness_is_documented(member: str) -> None:
    """Each member of ChannelHarness is in the guide's harness table."""
    assert f"`{member}" in guide(), f"the plugin guide does not document ChannelHarness.{member}"


def test_guide_names_the_entry_point_group_and_the_worked_example() -> None:
    text = guide()
    assert f"[project.entry-points.{hookspecs.PROJECT}]" in text
    assert "plugins/fake_channel" in text
    assert "class TestAcmeContract(ChannelContract):" in text


def worked_example() -> str:
    """The python block under the guide's ``hub_channel()`` heading."""
    text = guide()
    section = text[text.index("##### `hub_channel()`") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("```\n\n")]


def test_the_worked_example_declares_the_channel_the_guide_says() -> None:
    module = types.ModuleType("hub_acme_guide_example")
    exec(compile(worked_example(), "README.md (hub_channel)", "exec"), module.__dict__)
    registry = Registry(get_plugin_manager(load_entrypoints=False, plugins=[(module, "acme")]))
    acme = registry.channel("acme")
    assert acme.title == "ACME Marketplace"
    assert acme.describe()["capabilities"]["publish_listings"] == "not_supported"
    assert acme.requires("shipping_mappings")
    assert "token" in acme.connection_schema().load({"shop": "s", "token": "t"})
    message = acme.reauth_message("shop", "ACME refused the token")
    assert message.count("hub connections configure shop --set token=NEW_TOKEN") == 1
