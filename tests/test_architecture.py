"""The house has no import circles: not in hub_core, not in the plugins (issue 9).

The import graph comes from grimp (the engine of import-linter). It counts every import a module
makes, the ones inside functions and under ``TYPE_CHECKING`` too: a circle hidden in a function
is still a circle a reader has to untangle.
"""

from __future__ import annotations

import grimp
import pytest

#: The packages of the four distributions in this repository.
PACKAGES = ("hub_core", "hub_channeladvisor", "hub_fake_channel", "hub_channeladvisor_sandbox")


def import_circles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each circle once, as the modules along it (the first one repeated at the end)."""
    circles: dict[frozenset[str], tuple[str, ...]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                circle = (importer, *back)
                circles.setdefault(frozenset(circle), circle)
    return list(circles.values())


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The import graph of every package of the repository (no cache written)."""
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_the_graph_holds_every_package(graph: grimp.ImportGraph) -> None:
    for package in PACKAGES:
        assert package in graph.modules
    assert "hub_core.services.orders" in graph.modules
    assert "hub_channeladvisor_sandbox.server" in graph.modules


def test_no_module_imports_itself_back(graph: grimp.ImportGraph) -> None:
    circles = import_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_a_circle_is_found_when_there_is_one() -> None:
    """The check can fail: two modules importing each other (inside a function) are a circle."""
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.orders", "pkg.shipments", "pkg.models"):
        graph.add_module(module)
    graph.add_import(importer="pkg.orders", imported="pkg.models")
    graph.add_import(importer="pkg.shipments", imported="pkg.orders")
    assert import_circles(graph) == []
    graph.add_import(importer="pkg.orders", imported="pkg.shipments")
    assert import_circles(graph) == [("pkg.orders", "pkg.shipments", "pkg.orders")]
