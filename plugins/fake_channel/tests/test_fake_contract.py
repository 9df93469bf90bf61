"""The fake channel passes the hub's channel contract suite."""

from hub_core.testing import ChannelContract
from hub_fake_channel.testing import FakeHarness


class TestFakeContract(ChannelContract):
    harness_class = FakeHarness
    # Every service and CLI test runs on SQLite and on PostgreSQL (issue 12).
    databases = ("sqlite", "postgresql")
