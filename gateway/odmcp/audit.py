"""The audit log: one JSON line per mutation attempt, whatever its outcome.

A line never holds tool arguments, so neither credentials nor payment data can reach it: only
the tool, the object id, the names of the changed fields, attempts, outcome and duration.

Lines are written synchronously (a small file append) so none is ever queued and dropped. With
``on_error = "fail_closed"`` the sink is probed before every mutation and an unwritable log refuses
it before anything is sent upstream; ``"warn"`` logs and carries on. A line that fails *after* the
write ran is logged as lost at ERROR level: reporting an applied write as refused would invite a
duplicate retry.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import IO, Any

import msgspec

from odmcp.errors import GatewayError, InternalError

log = logging.getLogger("odmcp.audit")
_encoder = msgspec.json.Encoder()


class AuditError(InternalError):
    default_hint = "The audit log could not be written, so the mutation was refused. Check GATEWAY_AUDIT_LOG."


class AuditLog:
    def __init__(self, path: str, on_error: str = "fail_closed") -> None:
        self.path = os.path.expanduser(path) if path and path != "-" else path
        self.on_error = on_error
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            if self.path == "-":
                self._fh = sys.stderr.buffer
            else:
                self._fh = open(self.path, "ab", buffering=0)
        return self._fh

    def check_writable(self) -> None:
        """Raise AuditError now if a line could not be written (used before a mutation runs)."""
        if not self.enabled or self.on_error != "fail_closed":
            return
        try:
            with self._lock:
                self._open()
                if self.path != "-" and not os.access(self.path, os.W_OK):
                    raise OSError(f"{self.path} is not writable")
        except OSError as err:
            self._fh = None
            raise AuditError(f"audit log unavailable: {err.strerror or err}") from None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", **record}
        line = _encoder.encode(record) + b"\n"
        try:
            with self._lock:
                fh = self._open()
                fh.write(line)
                if self.path != "-":
                    fh.flush()
        except OSError as err:
            self._fh = None
            if self.on_error == "fail_closed":
                raise AuditError(f"audit log write failed: {err.strerror or err}") from None
            log.error("audit log write failed (%s); on_error=warn, continuing", err.strerror or err)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None and self.path != "-":
                self._fh.close()
            self._fh = None

    def write_safely(self, record: dict[str, Any]) -> None:
        """:meth:`write` after the tool ran: a failing sink is logged, never raised.

        The sink was checked before the write (``check_writable``); failing now would report an
        applied write as refused and invite a duplicate retry. Keep the real result, shout in the log.
        """
        try:
            self.write(record)
        except GatewayError as err:
            log.error(
                "audit line lost for %s (request %s, outcome %s): %s",
                record.get("tool"),
                record.get("request_id"),
                record.get("outcome"),
                err.message,
            )
