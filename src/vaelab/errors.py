"""The one exception type users see: a one-line message that names the problem and the fix."""


class VaelabError(Exception):
    """Bad input or a failed step. The CLI prints ``vaelab: error: <message>`` and exits 2."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if it has none), cut to `limit` characters:
    what a one-line VaelabError quotes of an error from deep inside torch."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
