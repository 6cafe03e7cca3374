"""The error type for problems a user can fix (bad paths, malformed lists, missing weights)."""

from __future__ import annotations


class ExtractionError(Exception):
    """A problem with the user's input. The message says what is wrong and how to fix it.

    The command line prints it without a traceback and exits with status 2.
    """
