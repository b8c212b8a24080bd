"""Errors are values with codes.

Every failure the gateway reports to an MCP client is a :class:`GatewayError` with one of the
:class:`ErrorCode` values. One function, :func:`odmcp.middleware.error_result`, turns them into MCP
``isError`` results; nothing else formats errors for the wire. The text is one line,
``CODE: what was wrong — what to do`` (:meth:`GatewayError.__str__`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    VALIDATION = "VALIDATION"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    UPSTREAM = "UPSTREAM"
    AUTH = "AUTH"
    READ_ONLY = "READ_ONLY"
    CONFIRMATION_REQUIRED = "CONFIRMATION_REQUIRED"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class GatewayError(Exception):
    """A failure with a machine code, a message that says what was wrong, and a hint on what to do."""

    code: ErrorCode = ErrorCode.INTERNAL
    default_hint: str = ""
    #: True when retrying the same call later may succeed (timeouts, 5xx, rate limits, conflicts).
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": str(self.code), "message": self.message, "retryable": self.retryable}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        """The one-line form every client sees: ``CODE: what was wrong — what to do``."""
        text = f"{self.code}: {self.message}" + (f" — {self.hint}" if self.hint else "")
        return _LINE_BREAKS.sub(" ", text)


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND
    default_hint = "Check the id (the store's list or search tool shows the ones that exist) and try again."


class ValidationFailed(GatewayError):
    code = ErrorCode.VALIDATION
    default_hint = "Fix the named field and call again; nothing was written."


class Conflict(GatewayError):
    code = ErrorCode.CONFLICT
    retryable = True
    default_hint = (
        "The object kept changing underneath us. Fetch it again, check the changes still apply, retry."
    )


class LeaseLost(Conflict):
    """The cross-replica lock on the object lapsed before the write went out (a stalled process, a
    slow Redis): another replica may be writing it now, so this one sent nothing."""

    default_hint = "Nothing was written; retry (the lock lapsed before the write could go out)."


class Unavailable(GatewayError):
    """A shared resource the call needs (the cross-replica lock) does not answer; nothing was done."""

    code = ErrorCode.UNAVAILABLE
    retryable = True
    default_hint = "Retry in a few seconds."


class RateLimited(GatewayError):
    code = ErrorCode.RATE_LIMITED
    retryable = True
    default_hint = "The upstream rate limit is exhausted; wait a few seconds and retry."


class UpstreamError(GatewayError):
    code = ErrorCode.UPSTREAM
    retryable = True
    default_hint = "The upstream service failed or timed out; retry later."


class OutcomeUnknown(UpstreamError):
    """A write was sent and no clear answer came back (a timeout, a dropped connection, a 5xx), and a
    re-read could not tell whether it was applied. Never ``retryable``: a blind retry could apply it twice.

    ``answered`` is True when the upstream did answer (a 5xx): it finished with the request, so a
    re-read is authoritative. False after a timeout or a drop: the request may still be in flight.
    Store plugins raise it from their requests; the workflow reconciles before it reaches a client, and
    the message then says how to check (which tool, which field).
    """

    code = ErrorCode.OUTCOME_UNKNOWN
    retryable = False
    default_hint = (
        "Do not repeat the call blindly: read the object again and check whether the change is there."
    )

    def __init__(
        self, message: str, *, hint: str | None = None, answered: bool = False, **details: Any
    ) -> None:
        super().__init__(message, hint=hint, **details)
        self.answered = answered


def partly_applied(err: GatewayError, applied: str, not_applied: str) -> GatewayError:
    """``err`` from a later step of a write whose earlier step *was* applied: say exactly what happened.

    The default hints of several codes say "nothing was written"; after a partial write that would be
    false, so the hint is replaced and the details name both parts. It is never ``retryable``: the same
    call again would apply the written part a second time (an added item twice).
    """
    err.retryable = False
    err.message = f"{err.message}; applied: {applied}; NOT applied: {not_applied}"
    err.hint = (
        f"Only the part named 'applied' was written; read the object again before retrying {not_applied}."
    )
    err.details = {**err.details, "applied": applied, "not_applied": not_applied}
    return err


class AuthError(GatewayError):
    code = ErrorCode.AUTH
    default_hint = "Check the credentials or the caller's grants."


class ReadOnlyError(GatewayError):
    code = ErrorCode.READ_ONLY
    default_hint = "The gateway runs in read-only mode; ask an operator to unset GATEWAY_READ_ONLY."


class ConfirmationRequired(GatewayError):
    code = ErrorCode.CONFIRMATION_REQUIRED
    default_hint = "Ask the user to confirm, then call again with confirm=true."


class InternalError(GatewayError):
    code = ErrorCode.INTERNAL
    default_hint = "This is a gateway bug or a plugin failure; the server log has details."


class ConfigError(Exception):
    """Raised for invalid configuration. The message names the file, the key and what was expected."""


class PluginClash(ConfigError):
    """Two plugins register the same name: a store type, a tool, a config section, a cache backend.

    Not a bug in either: one line naming both and how to keep one of them."""

    def __init__(self, what: str, first: str, second: str, disable: str | None = None) -> None:
        self.what, self.first, self.second = what, first, second
        self.disable = disable or second
        super().__init__(
            f"plugins {first!r} and {second!r} both register {what}; keep one of them: disable "
            f'{self.disable!r} with gateway.disabled_plugins = ["{self.disable}"] in the config file, '
            f"or GATEWAY_DISABLED_PLUGINS={self.disable}"
        )
