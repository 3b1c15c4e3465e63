"""The one exception type jtex raises for expected mistakes.

The CLI catches :class:`JtexError` and prints its message as one line (no
traceback) before exiting with status 1; any other exception is a bug.
Messages name the problem and, where there is one, the fix.
"""


class JtexError(Exception):
    """An expected, user-facing error: bad input, a missing file, a bad flag."""
