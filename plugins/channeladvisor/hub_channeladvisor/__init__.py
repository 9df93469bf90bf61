"""ChannelAdvisor (Rithum) channel for hub.

The entry point (group ``hub``) is :mod:`hub_channeladvisor.plugin`; the HTTP client lives in
:mod:`hub_channeladvisor.client`, the operations in :mod:`.listings`, :mod:`.orders`,
:mod:`.shipments`, :mod:`.explain` and :mod:`.checks`. The local API sandbox (and
``hub demo``) is its own distribution, ``hub-channeladvisor-sandbox``.
"""

__version__ = "0.1.0"
