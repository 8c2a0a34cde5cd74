"""The project's exception tree.

Messages are written for the person running the tool: they say what went wrong and where,
and never carry key material, session keys or cryptograms.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Root of every error the tool raises on purpose."""


class TransportError(ProvisionError):
    """The reader or the link to the card failed (no card, card removed, I/O error)."""


class CardRemovedError(TransportError):
    """The card left the reader while it was in use."""


class PcscServiceError(TransportError):
    """No PC/SC service to talk to: pcscd is not running, or pyscard is missing."""


class NoReaderError(TransportError):
    """No reader at all, none matching a pattern, or a reader that has gone away."""


class NoCardError(TransportError):
    """The reader holds no card."""


class ReaderBusyError(TransportError):
    """Another program holds the card or the reader."""


class ProtocolError(ProvisionError):
    """The card answered with something the protocol does not allow."""


class SecureChannelError(ProvisionError):
    """A secure channel could not be opened or was broken."""


class KeyMismatchError(SecureChannelError):
    """The card cryptogram did not verify: the host's keys are not the card's.

    Raised before EXTERNAL AUTHENTICATE is sent, so the card's retry counter is untouched.
    """


class KeyVersionError(SecureChannelError):
    """The card has no key set with the requested version, or the host has none for the
    version the card reports."""


class AuthenticationError(SecureChannelError):
    """The card refused EXTERNAL AUTHENTICATE."""


class ConfigError(ProvisionError):
    """A profile, key source or command-line setting is unusable."""
