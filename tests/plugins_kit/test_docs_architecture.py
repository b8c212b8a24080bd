"""docs/architecture.md and the code cannot drift apart: its host-module table names exactly the modules
of gateway/odmcp/, and every key a shared cache backend sees matches a row of its cache-key table (and
every row is a key the gateway uses), the way test_docs_hooks holds the hook reference."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from odmcp import hookimpl
from odmcp.testing import connect, delete_redis_prefix
from odmcp_orderdesk.testing import new_order

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    parts = re.split(r"^## +(.+?)\s*$", ARCHITECTURE, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))[title]


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_the_module_table_names_every_host_module_and_nothing_else() -> None:
    documented = {
        name
        for first, _what in table_rows(section("Host modules (`gateway/odmcp/`)"))
        for name in re.findall(r"`([a-z_]+\.py)`", first)
    }
    modules = {p.name for p in (ROOT / "gateway" / "odmcp").glob("*.py")}
    assert documented == modules, (
        f"missing from docs/architecture.md: {sorted(modules - documented)}; "
        f"documented but not in gateway/odmcp/: {sorted(documented - modules)}"
    )


class RecordKeys:
    """A cache backend plugin: the real Redis backend, noting every key it (and its fleet) is given."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: set[str] = set()

    def note(self, values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value.startswith(self.prefix + ":"):
                self.seen.add(value)
            elif isinstance(value, list | tuple):
                self.note(value)

    def wrap(self, inner: Any) -> Any:
        recorder = self

        class Noting:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(inner, name)
                if name == "fleet" and attr is not None:
                    return recorder.wrap(attr)
                if not callable(attr):
                    return attr

                def call(*args: Any, **kwargs: Any) -> Any:
                    recorder.note([*args, *kwargs.values()])
                    if name == "flight_claim":  # the fleet keeps the claim under a key of its own
                        from odmcp_cache_redis.fleet import flight_key

                        recorder.note([flight_key(args[0])])
                    return attr(*args, **kwargs)

                return call

        return Noting()

    @hookimpl
    def gateway_register_cache_backends(self, register: Any) -> None:
        from odmcp_cache_redis.backend import RedisBackend

        register("noted_redis", lambda settings: self.wrap(RedisBackend.from_settings(settings)))


def key_patterns(prefix: str) -> dict[str, re.Pattern[str]]:
    """The cache-key table's rows as regular expressions (``<...>`` placeholders as what they stand for)."""
    rows = {what: re.search(r"`([^`]+)`", key).group(1) for what, key in table_rows(section("Cache keys"))}  # type: ignore[union-attr]
    simple = {
        "<prefix>": re.escape(prefix),
        "<store_id>": r"[^:]+",
        "<kind>": r"[a-z_]+",
        "<id>": r"[^:]+",
        "<generation>": r"\d+",
        "<tool>": r"[a-z_.]+",
    }

    def regex(template: str) -> str:
        out = re.escape(template)
        for placeholder, pattern in simple.items():
            out = out.replace(re.escape(placeholder), pattern)
        return re.sub(r"<hash[^>]*>", "[0-9a-f]+", out)  # re.escape leaves < and > as they are

    plain = {what: regex(t) for what, t in rows.items() if "<guarded" not in t and "<cached" not in t}
    patterns = {}
    for what, template in rows.items():
        if "<guarded key without prefix>" in template:  # a lock: the prefix, then any plain key's tail
            tails = "|".join(p.removeprefix(re.escape(prefix) + ":") for p in plain.values())
            patterns[what] = re.escape(prefix) + ":lock:(?:" + tails + ")"
        elif "<cached key>" in template:  # a flight: any plain key, then its suffix
            suffix = re.escape(template.removeprefix("<cached key>"))
            patterns[what] = "(?:" + "|".join(plain.values()) + ")" + suffix
        else:
            patterns[what] = plain[what]
    return {what: re.compile(p) for what, p in patterns.items()}


@pytest.mark.sandbox(rate_limit_enabled=True)
async def test_every_cache_key_the_gateway_uses_is_a_row_of_the_table_and_every_row_is_used(
    gateway_factory: Any, orderdesk_sandbox: Any, redis_url: str
) -> None:
    prefix = f"test-docs-{uuid.uuid4().hex[:8]}"
    recorder = RecordKeys(prefix)
    gw = gateway_factory(
        plugins=[recorder],
        overrides={"cache.backend": "noted_redis", "cache.redis_url": redis_url, "cache.prefix": prefix},
    )
    order_id = str(orderdesk_sandbox.orders()[0]["id"])
    try:
        async with connect(gw) as c:
            calls = [
                ("orders_get", {"order_id": order_id}),
                ("orders_list", {"limit": 2}),
                ("store_get", {}),
                ("orders_create", {"order": new_order(source_id="DOC-1"), "idempotency_key": "docs-key-1"}),
                ("orders_update", {"order_id": order_id, "changes": {"order_metadata": {"k": "v"}}}),
                (
                    "orders_add_note_many",
                    {"order_ids": [order_id], "note": "n", "idempotency_key": "docs-key-2"},
                ),
            ]
            for tool, args in calls:
                result = await c.call_tool(tool, args)
                assert not result.is_error, (tool, result.content)
    finally:
        delete_redis_prefix(redis_url, prefix)
    patterns = key_patterns(prefix)
    unmatched = sorted(k for k in recorder.seen if not any(p.fullmatch(k) for p in patterns.values()))
    assert unmatched == [], f"keys the cache-key table of docs/architecture.md does not describe: {unmatched}"
    unused = sorted(what for what, p in patterns.items() if not any(p.fullmatch(k) for k in recorder.seen))
    assert unused == [], f"rows of the cache-key table no key matched: {unused}"
