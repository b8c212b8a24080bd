"""A msgspec JSON serializer for aiocache's ``RedisCache``.

``DEFAULT_ENCODING = None`` makes aiocache hand back the raw bytes, which msgspec decodes directly
(no ``bytes.decode`` round trip). A miss (``None``) stays ``None`` instead of failing to decode.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiocache.serializers import BaseSerializer


class MsgspecJsonSerializer(BaseSerializer):  # type: ignore[misc]  # aiocache is untyped (Any)
    DEFAULT_ENCODING = None

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def dumps(self, value: Any) -> bytes:
        return self._encoder.encode(value)

    def loads(self, value: bytes | None) -> Any:
        return None if value is None else self._decoder.decode(value)
