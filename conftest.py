"""Shared by every test of the repository: each test gets its own hub home.

The hub keeps its key file (and, by default, its database) in its home directory; a test must
never read or write the real one, so ``HUB_HOME`` points at a fresh directory and
``HUB_SECRET_KEY`` is unset (a test that wants it sets it).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_hub_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh, empty hub home for this test (``HUB_HOME``), with no ``HUB_SECRET_KEY``."""
    home = tmp_path_factory.mktemp("hub-home")
    monkeypatch.setenv("HUB_HOME", str(home))
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    return home
