"""Errors of the Phone Home flow.

Each message is one line that names what failed: the URL fetched, the document parsed or the
prefs file read.
"""

from __future__ import annotations

from ..errors import ProvisionError


class PhoneHomeError(ProvisionError):
    """Root of the Phone Home errors."""


class FetchError(PhoneHomeError):
    """The Phone Home URL could not be fetched: bad URL, no connection, timeout, too many
    redirects or an oversized answer. An HTTP error status is not a FetchError.

    ``limit`` is ``"redirects"`` or ``"size"`` when one of the fetch's own bounds stopped it,
    bounds ESC's XMLHttpRequest does not have.
    """

    def __init__(self, url: str, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.message = message
        self.limit = limit


class ServiceInfoError(PhoneHomeError):
    """A ServiceInfo document is malformed, refused (DTDs, entities) or holds unusable values."""

    def __init__(self, source: str, message: str, *, element: str | None = None) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
        self.element = element


class PrefsError(PhoneHomeError):
    """An ESC preferences file could not be read."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
