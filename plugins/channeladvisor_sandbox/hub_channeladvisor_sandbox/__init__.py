"""A local ChannelAdvisor (Rithum) REST API sandbox: a test double of the external service.

It serves `POST /oauth2/token` and the `/v1` resources the hub uses (Products with OData
queries and UpdateQuantity, DistributionCenters, Profiles, Orders with export flags, Ship,
Fulfillments, `$batch`), enforces the real limits (requests per minute per profile, requests
in flight per application), injects latency and faults deterministically from a seed, and
offers an admin surface under `/_sandbox/` plus the same operations in Python.

    from hub_channeladvisor_sandbox import Sandbox
    with Sandbox(seed=1) as sb:           # starts on a free port
        sb.seed_products(count=100)
        print(sb.url)

Shapes follow `reference/channeladvisor-api.md`; where it is UNCERTAIN, the module that
implements the point says which reading was chosen (`auth`, `odata`, `state`, `api`,
`batch`, `limits`, `faults`).
"""

from .constants import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    OTHER_PROFILE_ID,
)
from .errors import AdminError
from .faults import FaultConfig, FaultRule
from .server import Sandbox

__all__ = [
    "DEMO_APPLICATION_ID",
    "DEMO_PROFILE_ID",
    "DEMO_REFRESH_TOKEN",
    "DEMO_SHARED_SECRET",
    "OTHER_PROFILE_ID",
    "AdminError",
    "FaultConfig",
    "FaultRule",
    "Sandbox",
]
