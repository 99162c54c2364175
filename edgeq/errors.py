"""The one exception type users see: its message is printed as is, without a traceback."""


class EdgeqError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""
