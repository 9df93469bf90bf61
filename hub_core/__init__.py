"""hub: an integration hub for sales channels.

Plugins import the hook marker from here: ``from hub_core import hookimpl``.
"""

from hub_core.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"
