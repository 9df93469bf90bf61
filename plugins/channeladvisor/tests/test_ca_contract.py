"""ChannelAdvisor passes the hub's channel contract suite, against its embedded sandbox."""

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.testing import ChannelContract


class TestChannelAdvisorContract(ChannelContract):
    harness_class = ChannelAdvisorHarness
    # Every service and CLI test runs on SQLite and on PostgreSQL (issue 12).
    databases = ("sqlite", "postgresql")
