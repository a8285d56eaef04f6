"""The one exception type users see: a one-line message that names the problem and the fix."""


class VaelabError(Exception):
    """Bad input or a failed step. The CLI prints ``vaelab: error: <message>`` and exits 2."""
