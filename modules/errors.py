"""Errors whose message is meant for the user: printed without a traceback."""


class UserError(Exception):
    """Bad input or environment; the message names the file and the fix."""
