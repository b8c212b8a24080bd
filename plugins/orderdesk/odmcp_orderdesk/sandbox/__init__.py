"""A faithful in-memory OrderDesk REST API v2 for tests, demos and benchmarks.

Start one with ``async with Sandbox() as sb: ...`` (see :mod:`.server`); every invented status code
lives in :mod:`.assumptions`.
"""

from .config import SandboxConfig, StoreConfig
from .errors import ApiError
from .faults import FaultRule
from .recorder import RequestRecord
from .server import Sandbox, run_forever

__all__ = ["ApiError", "FaultRule", "RequestRecord", "Sandbox", "SandboxConfig", "StoreConfig", "run_forever"]
