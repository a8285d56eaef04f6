"""The one exception type users see: a one-line message that names the problem and the fix.

A message names an option through `arg("lr")` (or `arg("device", "cuda")`), written once for both faces:
from Python it reads as the argument (`lr`, `device='cuda'`), on the command line as the flag (`--lr`,
`--device cuda`); `VaelabError.for_cli` takes the CLI's one map from argument to flag.
"""
from __future__ import annotations

import numbers
import re
from typing import Callable

_MARK, _SEP = "\x1f", "\x1e"   # ASCII unit and record separators: never in a user's text
_NAMED = re.compile(f"{_MARK}([^{_MARK}{_SEP}]+)(?:{_SEP}([sv]){_SEP}([^{_MARK}]*))?{_MARK}")
_UNSET = object()


def arg(name: str, value: object = _UNSET) -> str:
    """An option named in an error message: `name`, or `name=value` where the value belongs to the sentence
    (`device='cuda'` from Python, `--device cuda` from the command line)."""
    if value is _UNSET:
        return f"{_MARK}{name}{_MARK}"
    text = f"{value:g}" if isinstance(value, float) else value   # 50.0 epochs reads as 50
    return f"{_MARK}{name}{_SEP}{'s' if isinstance(value, str) else 'v'}{_SEP}{text}{_MARK}"


def python_argument(name: str, kind: str | None, value: str | None) -> str:
    """How Python reads an option in a message: `lr`, `device='cuda'`, `progress=False`."""
    if kind is None:
        return name
    return f"{name}={value!r}" if kind == "s" else f"{name}={value}"


def render(message: str, word: Callable[[str, str | None, str | None], str] = python_argument) -> str:
    """`message` with every option marked by `arg` written by `word(name, kind, value)`."""
    return _NAMED.sub(lambda m: word(m.group(1), m.group(2), m.group(3)), message)


class VaelabError(Exception):
    """Bad input or a failed step. The CLI prints ``vaelab: error: <message>`` and exits 2.

    ``str(e)`` names options as Python arguments; ``e.for_cli(flag)`` as flags, `flag(name, value)` being
    the command line's map (``vaelab.cli_args.flag``). ``e.message`` keeps the marked text, for an error
    that is raised again with more words around it."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return render(self.message)

    def for_cli(self, flag: Callable[[str, str | None], str]) -> str:
        """The message with each option as the flag that sets it."""
        return render(self.message, lambda name, kind, value: flag(name, value))


def positive_int(name: str, value, what: str) -> int:
    """value as an int (a numpy integer too), or a VaelabError naming the argument `name` and what it counts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise VaelabError(f"{arg(name)} must be a positive integer ({what}), got {value!r}")
    return int(value)


def at_most(name: str, value: int, limit: int, why: str) -> int:
    """value itself if it is at most `limit`, else a VaelabError naming the argument, the limit and why there
    is one (sizes that scale memory or time are bounded before any work)."""
    if value > limit:
        raise VaelabError(f"{arg(name)} {value:,} is more than {limit:,} ({why}); give at most {limit:,}")
    return value


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if it has none), cut to `limit` characters:
    what a one-line VaelabError quotes of an error from deep inside torch."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
