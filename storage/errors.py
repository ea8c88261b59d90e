"""What the store raises for a missing thing, told apart from a bug's KeyError / IndexError."""

from __future__ import annotations


class NotFound(LookupError):
    """The named model, run, job or document is not in the store (the service answers 404).

    A LookupError, so callers that catch that still work; but only this one means "not
    found": a plain KeyError or IndexError is a bug, and must not be answered as a 404.
    """
