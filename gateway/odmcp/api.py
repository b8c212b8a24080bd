"""The public plugin API: everything a plugin may use from the host, in one module.

A plugin imports from here and nowhere else in ``odmcp`` (a test holds the plugins shipped here to
it). What is not listed is the host's own business and may change without notice.

* hooks: :data:`hookimpl` (the contracts are documented in ``docs/plugins.md``);
* errors: :class:`GatewayError` and one class per code, :func:`partly_applied`;
* objects and settings: :class:`Ref`, :class:`StoreSettings`, :class:`Secret`, :class:`CacheSettings`;
* tools: :class:`ToolTable` (declarations), :class:`ToolCall` (the call a tool serves),
  :func:`closest` (did-you-mean);
* the one write route: :class:`WriteOp`, :class:`Plan`, :class:`WriteIO`, :class:`TargetOutcome`,
  :class:`WriteOutcome`, the hook-based ops :class:`UpdateObject`, :class:`DeleteObject`,
  :class:`CreateObject`, and bulk jobs (:class:`BulkJob`, :class:`BulkReport`);
* undo: :class:`RevertStep` (what a ``gateway_register_reverts`` builder returns);
* cache backends and fleet primitives (:class:`CacheBackend`, :class:`Claim`, :class:`Reservation`,
  rate limiters), the journal's records, and the command line (:class:`Commands`, :class:`CliError`);
* the pytest kit's entry points (:func:`connect`, ...), imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odmcp.app import Gateway
from odmcp.arguments import closest
from odmcp.budget import fit_list, fit_object, text_size
from odmcp.bulk import MAX_TARGETS, BulkJob, BulkReport, report_entry
from odmcp.cache import digest
from odmcp.cache_backend import CacheBackend
from odmcp.changes import RevertStep
from odmcp.cli import CliError, Commands, listen_error, port_number
from odmcp.config import (
    CacheSettings,
    Config,
    JournalSettings,
    RateLimitSettings,
    Secret,
    StoreSettings,
    mask_url,
)
from odmcp.errors import (
    AuthError,
    ConfigError,
    ConfirmationRequired,
    Conflict,
    ErrorCode,
    GatewayError,
    InternalError,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ReadOnlyError,
    Unavailable,
    UpstreamError,
    ValidationFailed,
    partly_applied,
)
from odmcp.fleet import Claim, Reservation
from odmcp.journal import (
    ChangeQuery,
    JobRecord,
    JournalBackend,
    WriteRecord,
    decode_job,
    decode_write,
    encode,
    job_time,
)
from odmcp.object_ops import CreateObject, DeleteObject, UpdateObject
from odmcp.plugins import hookimpl
from odmcp.ratelimit import MEMBER_WINDOW, LeakyBucket, RateLimiter
from odmcp.refs import Ref
from odmcp.route import Plan, TargetOutcome, Verdict, WriteIO, WriteOp, WriteOutcome, lock_key
from odmcp.tools import ToolCall, ToolTable, can_elicit

if TYPE_CHECKING:
    from odmcp.testing import (
        ISOLATED_ENV_PREFIXES,
        connect,
        delete_redis_prefix,
        free_port,
        merge_overrides,
        serve_http,
        serve_process,
    )

__all__ = [
    "ISOLATED_ENV_PREFIXES",
    "MAX_TARGETS",
    "MEMBER_WINDOW",
    "AuthError",
    "BulkJob",
    "BulkReport",
    "CacheBackend",
    "CacheSettings",
    "ChangeQuery",
    "Claim",
    "CliError",
    "Commands",
    "Config",
    "ConfigError",
    "ConfirmationRequired",
    "Conflict",
    "CreateObject",
    "DeleteObject",
    "ErrorCode",
    "Gateway",
    "GatewayError",
    "InternalError",
    "JobRecord",
    "JournalBackend",
    "JournalSettings",
    "LeakyBucket",
    "LeaseLost",
    "NotFound",
    "OutcomeUnknown",
    "Plan",
    "RateLimitSettings",
    "RateLimited",
    "RateLimiter",
    "ReadOnlyError",
    "Ref",
    "Reservation",
    "RevertStep",
    "Secret",
    "StoreSettings",
    "TargetOutcome",
    "ToolCall",
    "ToolTable",
    "Unavailable",
    "UpdateObject",
    "UpstreamError",
    "ValidationFailed",
    "Verdict",
    "WriteIO",
    "WriteOp",
    "WriteOutcome",
    "WriteRecord",
    "can_elicit",
    "closest",
    "connect",
    "decode_job",
    "decode_write",
    "delete_redis_prefix",
    "digest",
    "encode",
    "fit_list",
    "fit_object",
    "free_port",
    "hookimpl",
    "job_time",
    "listen_error",
    "lock_key",
    "mask_url",
    "merge_overrides",
    "partly_applied",
    "port_number",
    "report_entry",
    "serve_http",
    "serve_process",
    "text_size",
]

#: the pytest kit's names, imported only when a plugin's tests ask for them
_KIT = {
    "connect",
    "serve_http",
    "serve_process",
    "free_port",
    "merge_overrides",
    "delete_redis_prefix",
    "ISOLATED_ENV_PREFIXES",
}


def __getattr__(name: str) -> Any:
    if name in _KIT:
        from odmcp import testing

        return getattr(testing, name)
    raise AttributeError(name)
