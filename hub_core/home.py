"""The hub's home directory: where its own files live (the secret key file, design §5, §10).

``HUB_HOME`` when set, else click's per-user application directory for ``hub`` (for example
``~/.config/hub`` on Linux). Everything that needs a place for the hub's files asks
:func:`hub_home`, so one variable moves them all (tests set it to a temporary directory).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

HOME_ENV = "HUB_HOME"


def hub_home() -> Path:
    """The hub's home directory (not created): ``HUB_HOME``, else ``click.get_app_dir("hub")``."""
    configured = os.environ.get(HOME_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(click.get_app_dir("hub"))


def ensure_hub_home() -> Path:
    """The hub's home directory, created private (0700) if it does not exist yet."""
    home = hub_home()
    # mode applies to directories this call creates; an existing one keeps its mode.
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; return whether it was created.

    ``O_EXCL`` makes creation atomic, and the mode is given at creation, so the file is never
    readable by others, not even for a moment (the umask can only remove bits).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True
