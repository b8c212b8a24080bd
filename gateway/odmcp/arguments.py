"""Tool arguments are checked once, in the host, before any policy hook or tool body runs.

* An argument the tool does not declare is refused with VALIDATION naming it and the closest declared
  one (``unknown argument 'dryRun'; did you mean 'dry_run'?``): pydantic would silently drop it, and a
  dropped ``dryRun`` turns a preview into a real write.
* A value that does not fit the declared type is refused with one VALIDATION line naming the argument
  and what was expected, instead of pydantic's multi-line dump (with its documentation URL). A length
  bound counts characters in text and items in a list or an object, whatever pydantic's words.

The check uses the SDK's own argument model for the tool (``Tool.from_function``), so it accepts
exactly what the SDK would pass to the tool.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mcp.server.mcpserver.tools import Tool
from pydantic import ValidationError

from odmcp.errors import ValidationFailed

#: longest rendering of a rejected value in a message
_SHOWN_CHARS = 40


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` most likely meant: same letters ignoring case/``_``/``-``, else difflib's best."""
    options = sorted(choices)

    def plain(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    for option in options:
        if plain(option) == plain(name):
            return option
    by_plain = {plain(option): option for option in options}
    found = difflib.get_close_matches(plain(name), list(by_plain), n=1, cutoff=0.6)
    return by_plain[found[0]] if found else None


def _shown(value: Any) -> str:
    """The received value as JSON (what the model sent), cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


#: pydantic's words for JSON types, in the JSON words of the schema the model reads
_JSON_WORDS = (
    ("a valid dictionary", "an object"),
    ("a valid list", "an array"),
    ("a valid string", "a string"),
    ("a valid integer", "an integer"),
    ("a valid number", "a number"),
    ("a valid boolean", "true or false"),
)
#: pydantic's length errors and the bound each names. A bound checked after another validator (an
#: ``AfterValidator`` before ``Field(min_length=8)``) is a generic ``too_short`` that counts "items"
#: even for a string; the unit is therefore chosen from the value received.
_LENGTH_BOUNDS = {
    "string_too_short": ("at least", "min_length"),
    "too_short": ("at least", "min_length"),
    "string_too_long": ("at most", "max_length"),
    "too_long": ("at most", "max_length"),
}
#: the subject pydantic starts a message with ("Input should be ...", "String should match ...")
_SUBJECT = re.compile(r"^(Input|String|List|Dictionary|Value|Object|Tuple|Set|Decimal|Date) (?=should)")


def _where(error: Mapping[str, Any], arguments: Any) -> str:
    """The argument path of an error as the model wrote it (``shipments[0].weight``).

    pydantic also puts the member of a union it tried into the location (``list[str]``, a model's
    class name); a part that names no key of what the model sent is such a tag and is left out.
    """
    loc = list(error.get("loc", ()))
    out, node = "", arguments
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list):
            out += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict) and (
            part in node or (i == len(loc) - 1 and error.get("type") == "missing")
        ):
            out += f".{part}" if out else str(part)
            node = node.get(part)
    return out


def _expected(error: Mapping[str, Any]) -> str:
    """What pydantic expected, without its elaborations (``should be an integer``)."""
    msg = str(error.get("msg", "is invalid"))
    if msg.startswith("Value error, "):  # a validator's own message
        return msg.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        return "is not an accepted field"
    if (length := _length(error)) is not None:
        return length
    msg = _SUBJECT.sub("", msg)
    for cut in (", unable to", ", got ", " after validation"):
        msg = msg.split(cut, 1)[0]
    for pydantic_word, json_word in _JSON_WORDS:
        msg = msg.replace(pydantic_word, json_word)
    if error.get("type") in ("too_short", "too_long") and isinstance(error.get("input"), str):
        msg = msg.replace(" items", " characters")  # a length bound on an optional string counts items
    return msg[:1].lower() + msg[1:]


def _length(error: Mapping[str, Any]) -> str | None:
    """A length bound in the unit of the value: ``should have at least 8 characters`` (or ``items``)."""
    said, key = _LENGTH_BOUNDS.get(str(error.get("type")), (None, ""))
    bound = (error.get("ctx") or {}).get(key)
    if said is None or not isinstance(bound, int):
        return None
    unit = "character" if isinstance(error.get("input"), str) else "item"
    return f"should have {said} {bound} {unit}{'' if bound == 1 else 's'}"


def describe(exc: ValidationError, arguments: Any = None) -> ValidationFailed:
    """pydantic's argument errors as one VALIDATION line, one clause per argument in error:
    ``argument 'limit' should be an integer, got "two"``. The errors pydantic reports for each
    member of a union are one clause (``should be 'summary' or 'full' or an array``).
    ``details["field"]`` names the first argument."""
    expected: dict[str, list[str]] = {}
    received: dict[str, Any] = {}
    for error in exc.errors(include_url=False):
        where = _where(error, arguments) or "arguments"
        if error.get("type") == "missing":
            expected.setdefault(where, []).append("is required")
            continue
        said = _expected(error)
        if said not in expected.setdefault(where, []):
            expected[where].append(said)
        received.setdefault(where, error.get("input"))
    parts = []
    for where, wanted in expected.items():
        text = f"argument {where!r} " + " or ".join(
            s if i == 0 else s.removeprefix("should be ") for i, s in enumerate(wanted)
        )
        parts.append(text + (f", got {_shown(received[where])}" if where in received else ""))
    details = {"field": next(iter(expected))} if expected else {}
    return ValidationFailed(
        "; ".join(parts) or "invalid arguments",
        hint="Fix the named argument (the input schema says what it takes) and call again; "
        "nothing was written.",
        **details,
    )


class ArgumentCheck:
    """The declared arguments of one tool and the SDK's validator for them."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        tool = Tool.from_function(fn, structured_output=False)
        properties = tool.parameters.get("properties", {})
        self.names: tuple[str, ...] = tuple(properties)
        self._validate = tool.fn_metadata.validate_arguments

    def __call__(self, arguments: Mapping[str, Any]) -> ValidationFailed | None:
        """The first problem with ``arguments``, or None when the tool may run with them."""
        for name in arguments:
            if name in self.names:
                continue
            guess = closest(name, self.names)
            return ValidationFailed(
                f"unknown argument {name!r}" + (f"; did you mean {guess!r}?" if guess else ""),
                hint=(
                    f"This tool takes only: {', '.join(sorted(self.names))}"
                    if self.names
                    else "This tool takes no arguments"
                )
                + "; nothing was written.",
                field=name,
            )
        try:
            self._validate(dict(arguments))
        except ValidationError as exc:
            return describe(exc, dict(arguments))
        return None


def close_schema(schema: dict[str, Any]) -> None:
    """Publish what :class:`ArgumentCheck` enforces: no argument besides the declared ones."""
    schema["additionalProperties"] = False
