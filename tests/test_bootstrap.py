"""``scripts/bootstrap`` installs only when a pyproject.toml changed, and keeps setuptools'
warnings out of its output (issue 15).

The script runs on a copy of the repository's layout whose ``.venv/bin/python`` is a stand-in:
it hashes with the real Python and, for ``-m pip``, records the call (and the warnings setting
pip would pass to setuptools) instead of installing anything. No network, no real install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECTS = [
    "pyproject.toml",
    "plugins/fake_channel/pyproject.toml",
    "plugins/channeladvisor/pyproject.toml",
    "plugins/channeladvisor_sandbox/pyproject.toml",
]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The script and the four pyproject files, with a recording ``.venv/bin/python``."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    for name in PYPROJECTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        f'  echo "PYTHONWARNINGS=${{PYTHONWARNINGS:-}} $*" >> "{tmp_path}/pip.log"\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return tmp_path


def _bootstrap(checkout: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script; return its result and the pip calls it made (this run only)."""
    log = checkout / "pip.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result, log.read_text().splitlines() if log.exists() else []


def test_bootstrap_installs_once_then_only_when_a_pyproject_changes(checkout: Path) -> None:
    _first, calls = _bootstrap(checkout, "test")
    assert len(calls) == 2  # pip itself, then the four distributions in one call
    assert "-e .[test] -e plugins/fake_channel -e plugins/channeladvisor" in calls[1]

    again, calls = _bootstrap(checkout, "test")
    assert calls == []
    assert "up to date" in again.stderr
    _plain, calls = _bootstrap(checkout)  # no extra: what is installed already covers it
    assert calls == []

    with (checkout / "plugins/channeladvisor/pyproject.toml").open("a") as handle:
        handle.write("\n# a change\n")
    _changed, calls = _bootstrap(checkout)
    assert len(calls) == 2 and "-e .[test]" in calls[1]  # the extras installed are kept


def test_bootstrap_prints_no_setuptools_warnings(checkout: Path) -> None:
    result, calls = _bootstrap(checkout, "test")
    # pip hands its environment to the build backend: setuptools' warnings are off there.
    assert calls and all(call.startswith("PYTHONWARNINGS=ignore ") for call in calls)
    assert "Warning" not in result.stderr and "warning" not in result.stdout.lower()
