"""Key sources: where a profile's key sets find their keys, and the provider a burn asks.

A key set names a source (an environment variable, a key file or a PKCS#11 token) and a
diversification method; :func:`open_card_keys` turns the profile's key sets into a
:class:`~provision.gp.session.CardKeys` provider that yields each card's static keys from the
key version and KDD the card reports. See profiles/README.md, Key sets and Key sources.
"""

from __future__ import annotations

from .provider import WELL_KNOWN_TEST_KEYS, ProfileCardKeys, open_card_keys
from .spec import EnvSource, FileSource, KeySetSpec, KeySource, Pkcs11Source, parse_key_source

__all__ = [
    "WELL_KNOWN_TEST_KEYS",
    "EnvSource",
    "FileSource",
    "KeySetSpec",
    "KeySource",
    "Pkcs11Source",
    "ProfileCardKeys",
    "open_card_keys",
    "parse_key_source",
]
