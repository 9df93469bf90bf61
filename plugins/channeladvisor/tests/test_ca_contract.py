"""ChannelAdvisor passes the hub's channel contract suite, against its embedded sandbox."""

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.testing import ChannelContract


class TestChannelAdvisorContract(ChannelContract):
    harness_class = ChannelAdvisorHarness
