"""The one exception type users see: a one-line message that names the problem and the fix."""
import numbers


class VaelabError(Exception):
    """Bad input or a failed step. The CLI prints ``vaelab: error: <message>`` and exits 2."""


def positive_int(name: str, value, what: str) -> int:
    """value as an int (a numpy integer too), or a VaelabError naming the argument `name` and what it counts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise VaelabError(f"{name} must be a positive integer ({what}), got {value!r}")
    return int(value)


def at_most(name: str, value: int, limit: int, why: str) -> int:
    """value itself if it is at most `limit`, else a VaelabError naming the argument, the limit and why there
    is one (sizes that scale memory or time are bounded before any work)."""
    if value > limit:
        raise VaelabError(f"{name} {value:,} is more than {limit:,} ({why}); give at most {limit:,}")
    return value


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if it has none), cut to `limit` characters:
    what a one-line VaelabError quotes of an error from deep inside torch."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
