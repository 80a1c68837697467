"""The one exception type for mistakes a user can make and fix.

The CLI turns a `CliffError` into a single line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""


class CliffError(Exception):
    """An expected, user-fixable problem (bad image, bad box, wrong checkpoint, missing file)."""
