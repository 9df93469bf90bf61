"""hub-fake-channel: the reference channel plugin for hub, backed by a local JSON file.

The plugin itself is :mod:`hub_fake_channel.plugin` (entry point ``fake`` of the group ``hub``);
:class:`hub_fake_channel.store.FakeStore` is the channel's state, for tests and demos.
"""

from hub_fake_channel.store import FakeStore, FakeStoreError

__all__ = ["FakeStore", "FakeStoreError"]
