"""The tool list each caller sees (``tools/list``): only the tools it may call, in compact schemas.

The SDK derives every tool's schemas from its Python signature. They are correct, and a model reads
all of them at the start of every conversation, so repetition costs every caller every time. The
middleware hands the SDK's list to :func:`tools_for` (once per kind of caller, then memoised):

* **Only what the caller may call**: write tools are left out in read-only mode and for a read-only
  token; tools that act on a store are left out for a token that may use none. Calls are still
  checked in full (:mod:`odmcp.middleware`); this only stops advertising what would be refused.
* **One ``store`` schema**: every ``store`` argument becomes the same short schema, the names of the
  stores of the tool's store type the caller may use as an ``enum`` and its default store of that
  type as ``default`` (the type's default store, or a store-limited token's first granted store of
  that type: what a call without ``store`` uses); what ``store`` is, is said once,
  in the server instructions. A caller whose only store is the default store is not offered the
  argument at all: there is nothing to choose (a call that sends it is still accepted).
* **No noise**: titles pydantic derives from parameter names, ``anyOf [T, null]`` of an optional
  argument (null means "omitted"), the ``type`` of an enum of strings, ``default: null`` and
  ``default: false`` (an optional flag is off unless sent), and ``additionalProperties: true`` (JSON
  Schema's defaults), defaults and ``required`` in output schemas (they say what a result looks
  like, not what a client must check), the annotations' copy of the tool title and the hints that
  say nothing (:func:`hints`). Output schemas keep their nulls (as ``anyOf`` branches of one type
  each, the portable spelling): a client validates results against them.
* **Output schemas where they inform a choice**: a read tool's output schema tells the model what it
  will get (a list's summary shape, what ``fields`` can ask for); a write tool publishes none: its
  description says what it returns and the result (``structuredContent`` as always) says it again.
* **Closed inputs**: ``additionalProperties: false``, which the argument check enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from odmcp.arguments import close_schema
from odmcp.config import Config
from odmcp.tools import ToolSpec

_NULL = {"type": "null"}


def store_schema(names: list[str], default: str | None) -> dict[str, Any]:
    """The ``store`` argument as a caller sees it: its store names, the default store if it may use it."""
    out: dict[str, Any] = {"type": "string", "enum": names}
    if default in names:
        out["default"] = default
    return out


def compact(schema: Any, *, inputs: bool) -> Any:
    """``schema`` without what JSON Schema or the context already says (see the module docstring)."""
    if isinstance(schema, list):
        return [compact(s, inputs=inputs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    node = schema
    variants = node.get("anyOf")
    if inputs and isinstance(variants, list) and len(variants) > 2 and _NULL in variants:
        if "default" in node and node["default"] is None:  # an optional argument of several types
            node = {k: v for k, v in node.items() if k != "default"} | {
                "anyOf": [v for v in variants if v != _NULL]
            }
    elif isinstance(variants, list) and len(variants) == 2 and _NULL in variants:
        other = compact(variants[0] if variants[1] == _NULL else variants[1], inputs=inputs)
        if inputs and "default" in node and node["default"] is None:
            # an optional argument: omitting it is what null means
            node = {k: v for k, v in node.items() if k not in ("anyOf", "default")} | other
        # a nullable result field keeps its anyOf: a ``type: [T, "null"]`` list is shorter, but clients
        # that map schemas onto a single-type dialect (Gemini's OpenAPI subset) reject it
    out: dict[str, Any] = {}
    enum = node.get("enum")
    strings = inputs and isinstance(enum, list) and all(isinstance(v, str) for v in enum)
    for key, value in node.items():
        if key == "type" and strings and value == "string":
            continue  # an enum of strings says the type itself
        if key == "title" or (key == "default" and (value is None or value is False or not inputs)):
            continue  # a result's default says nothing about the result
        if key == "required" and not inputs:
            continue  # the model reads a result's shape; checking it is the client's business
        if key == "additionalProperties" and value is True:
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: compact(sub, inputs=inputs) for name, sub in value.items()}
        else:
            out[key] = compact(value, inputs=inputs)
    return out


def hints(spec: ToolSpec, listed: Mapping[str, Any]) -> dict[str, Any]:
    """Only the hints that differ from the MCP spec's defaults (a client reads an omitted hint as its
    default: ``readOnlyHint`` false, ``destructiveHint`` true, ``idempotentHint`` false,
    ``openWorldHint`` true): ``readOnlyHint: true`` on a read tool; on a write tool
    ``destructiveHint: false`` when it only adds, ``idempotentHint: true`` when a repeat is harmless;
    ``openWorldHint: false`` for a tool that never leaves the gateway."""
    out: dict[str, Any] = {}
    if not spec.writes:
        out["readOnlyHint"] = True
    else:
        if not spec.destructive:
            out["destructiveHint"] = False
        if spec.idempotent:
            out["idempotentHint"] = True
    if not spec.open_world:
        out["openWorldHint"] = False
    return out


def caller_stores(config: Config, token: Any, store_type: str | None = None) -> list[str]:
    """The names of the stores of ``store_type`` (None: every store) ``token`` may use (all of them
    without a token)."""
    return [s.name for s in config.stores_of(store_type) if token is None or token.allows_store(s.name)]


def may_call(spec: ToolSpec, config: Config, token: Any, stores: list[str]) -> bool:
    """Whether a caller with ``token`` (None: no token) would be allowed to call ``spec`` at all."""
    if spec.writes and (config.gateway.read_only or getattr(token, "read_only", False)):
        return False
    return not (spec.store_scoped and token is not None and not stores)


def visible(by_wire: Mapping[str, ToolSpec], config: Config, token: Any) -> frozenset[str]:
    """The canonical names of the tools a caller with ``token`` sees in its ``tools/list``."""
    stores = caller_stores(config, token)
    return frozenset(s.name for s in by_wire.values() if may_call(s, config, token, stores))


_PAREN = re.compile(r"\s*\([^()]*\)")
_CLAUSES = re.compile(r"(?<=[.;:])\s+")


class HintWords:
    """Tool names in error hints, as one caller may read them.

    Hints are written with underscore names (``orders_list``). :meth:`rewrite` spells a tool the caller
    sees as its wire name, and drops what points to a tool it does not see: the parenthesis that
    names it, else the clause (``Call stores_list ...``), so a hint never sends a model to a tool it
    cannot call.
    """

    def __init__(self, names: Iterable[str], wire: Callable[[str], str]) -> None:
        self.by_word = {n.replace(".", "_"): n for n in names}
        self.wire = wire
        words = sorted(self.by_word, key=len, reverse=True)
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b") if words else None

    def rewrite(self, text: str, shown: frozenset[str]) -> str:
        if self.pattern is None or not self.pattern.search(text):
            return text

        def hides(part: str) -> bool:
            assert self.pattern is not None
            return any(self.by_word[m] not in shown for m in self.pattern.findall(part))

        text = _PAREN.sub(lambda m: "" if hides(m.group()) else m.group(), text)
        kept = [c for c in _CLAUSES.split(text) if not hides(c)]
        out = " ".join(kept).strip()
        if out[-1:] in (":", ";", ","):
            out = out[:-1] + "."
        out = out or "The tools that would show more are not served here."
        return self.pattern.sub(lambda m: self.wire(self.by_word[m.group()]), out)


def tools_for(
    listed: list[dict[str, Any]], by_wire: Mapping[str, ToolSpec], config: Config, token: Any
) -> list[dict[str, Any]]:
    """The SDK's wire list of tools as the caller with ``token`` sees it: a tool's ``store`` argument
    lists the stores of the tool's store type."""
    out = []
    for tool in listed:
        spec = by_wire.get(str(tool.get("name")))
        if spec is None:  # not a gateway tool: leave it as the SDK made it
            out.append(tool)
            continue
        stores = caller_stores(config, token, spec.store_type)
        default_store = config.default_for(token, spec.store_type)
        default = default_store.name if default_store is not None else None
        if not may_call(spec, config, token, stores):
            continue
        shown = {k: v for k, v in tool.items() if k not in ("inputSchema", "outputSchema", "annotations")}
        schema = compact(tool.get("inputSchema") or {}, inputs=True)
        properties = schema.get("properties")
        if spec.store_scoped and isinstance(properties, dict) and "store" in properties:
            if stores == [default]:  # one store to choose from, and omitting store means it
                del properties["store"]
            else:
                properties["store"] = store_schema(stores, default)
        close_schema(schema)
        shown["inputSchema"] = schema
        if tool.get("outputSchema") is not None and not spec.writes:
            shown["outputSchema"] = compact(tool["outputSchema"], inputs=False)
        listed_hints = tool.get("annotations")
        if isinstance(listed_hints, dict) and (shown_hints := hints(spec, listed_hints)):
            shown["annotations"] = shown_hints
        out.append(shown)
    return out
