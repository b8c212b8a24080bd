"""Tool arguments are checked once, in the host, before any policy hook or tool body runs.

* An argument the tool does not declare is refused with VALIDATION naming it and the closest declared
  one (``unknown argument 'dryRun'; did you mean 'dry_run'?``): pydantic would silently drop it, and a
  dropped ``dryRun`` turns a preview into a real write.
* A value that does not fit the declared type is refused with one VALIDATION line naming the argument
  and what was expected, instead of pydantic's multi-line dump (with its documentation URL).

The check uses the SDK's own argument model for the tool (``Tool.from_function``), so it accepts
exactly what the SDK would pass to the tool.
"""

from __future__ import annotations

import difflib
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
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _location(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc: ValidationError) -> ValidationFailed:
    """pydantic's argument errors as one VALIDATION line; ``details["field"]`` names the first argument."""
    parts: list[str] = []
    fields: list[str] = []
    for error in exc.errors(include_url=False):
        where = _location(error.get("loc", ())) or "arguments"
        fields.append(where)
        if error.get("type") == "missing":
            parts.append(f"argument {where!r} is required")
            continue
        msg = str(error.get("msg", "is invalid"))
        got = f"got {_shown(error.get('input'))}"
        if msg.startswith("Input should"):  # "Input should be a valid integer, ..."
            parts.append(f"argument {where!r}{msg.removeprefix('Input')}, {got}")
        else:
            parts.append(f"argument {where!r}: {msg[:1].lower() + msg[1:]}, {got}")
    details = {"field": fields[0]} if fields else {}
    return ValidationFailed(
        "; ".join(parts) or "invalid arguments",
        hint="Fix the named argument (the tool's input schema says what it accepts) and call again; "
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
            return describe(exc)
        return None


def close_schema(schema: dict[str, Any]) -> None:
    """Publish what :class:`ArgumentCheck` enforces: no argument besides the declared ones."""
    schema["additionalProperties"] = False
