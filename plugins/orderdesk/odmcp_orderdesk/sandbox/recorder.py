"""A log of every OrderDesk API request the sandbox answered, for assertions in tests and benchmarks.

Tests assert on what the client actually sent (method, path, body, headers) rather than on mocks.
The log is a ring buffer (``SandboxConfig.request_log_size`` records, 10,000 by default): a sandbox
left running under load for hours keeps only the newest records, so its memory stays flat;
``total`` still counts every request since the last ``clear``.
Header names are lower-cased so lookups do not depend on the client's casing, and the API key is
replaced by ``***`` so a log can be printed or dumped over HTTP without leaking the credential.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

MASKED = "***"
SECRET_HEADERS = frozenset({"orderdesk-api-key", "authorization"})


@dataclass(slots=True)
class RequestRecord:
    """One request. Readable as attributes (``rec.method``) or keys (``rec["method"]``)."""

    method: str  # effective method, after X-HTTP-Method-Override
    path: str  # relative to /api/v2 (e.g. "/orders/123"); the full path when outside it
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names, API key masked
    json: Any  # parsed body, or None (no body / not JSON)
    status: int  # 0 when the connection was dropped without a response
    ts: float  # wall-clock arrival time (time.time())
    raw_method: str = ""
    full_path: str = ""
    store_id: str = ""
    duration_ms: float = 0.0
    fault: str | None = None  # name (or "#id") of the fault rule that fired

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mask_headers(raw: Any) -> dict[str, str]:
    return {k.lower(): (MASKED if k.lower() in SECRET_HEADERS else v) for k, v in raw.items()}


class RequestLog:
    """The newest ``max_records`` requests, oldest first."""

    def __init__(self, max_records: int = 10_000) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        #: requests recorded since the last clear, including those the ring has since dropped
        self.total = 0

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.total += 1

    def clear(self) -> None:
        self.records.clear()
        self.total = 0

    def filter(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        store_id: str | None = None,
        status: int | None = None,
        path_regex: str | None = None,
    ) -> list[RequestRecord]:
        """Records matching every given criterion, oldest first."""
        pattern = re.compile(path_regex) if path_regex else None
        want_method = method.upper() if method else None
        return [
            r
            for r in self.records
            if (want_method is None or r.method == want_method)
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (store_id is None or r.store_id == store_id)
            and (status is None or r.status == status)
            and (pattern is None or pattern.search(r.path))
        ]
