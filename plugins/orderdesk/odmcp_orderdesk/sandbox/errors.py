"""The one exception sandbox logic raises; the HTTP layer turns it into an OrderDesk error envelope.

Keeping it separate from aiohttp lets the state code (also used directly from Python by tests) fail
with a status code and message without knowing about HTTP responses.
"""

from __future__ import annotations


class ApiError(Exception):
    """An OrderDesk-style error: ``{"status": "error", "message": message}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
