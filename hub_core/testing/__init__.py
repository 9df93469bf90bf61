"""The channel contract suite: the rules every channel obeys, shipped for plugins to adopt.

A channel plugin writes a :class:`ChannelHarness` around its channel double and adopts the
suite in a test module::

    from hub_core.testing import ChannelContract
    from hub_fake_channel.testing import FakeHarness


    class TestFakeContract(ChannelContract):
        harness_class = FakeHarness

See "Writing a channel plugin" in the README. Importing this package needs pytest.
"""

from hub_core.testing.cli import CliResult, HookCalls, HubCli, make_registry
from hub_core.testing.contract import ChannelContract, World
from hub_core.testing.harness import (
    FAILABLE_OPERATIONS,
    FAILURE_KINDS,
    ChannelHarness,
    ChannelProduct,
    FailureKind,
    ReceivedShipment,
    ReceivedUpdate,
)

__all__ = [
    "FAILABLE_OPERATIONS",
    "FAILURE_KINDS",
    "ChannelContract",
    "ChannelHarness",
    "ChannelProduct",
    "CliResult",
    "FailureKind",
    "HookCalls",
    "HubCli",
    "ReceivedShipment",
    "ReceivedUpdate",
    "World",
    "make_registry",
]
