"""Key providers for tests, built the way a profile's inline test key sets are."""

from __future__ import annotations

from provision.gp.diversify import Diversification
from provision.gp.keys import Scp, StaticKeys
from provision.keysource import KeySetSpec, ProfileCardKeys, open_card_keys


def static_keys(protocol: Scp, enc: bytes, mac: bytes, dek: bytes) -> StaticKeys:
    return StaticKeys.from_bytes(enc, mac, dek, aes=protocol is Scp.SCP03)


def inline(kvn: int, protocol: Scp, keys: StaticKeys) -> ProfileCardKeys:
    """A provider holding one undiversified key set."""
    spec = KeySetSpec(
        kvn, protocol, Diversification.NONE, True, "test:1: key_sets[0]", static=keys
    )
    return open_card_keys([spec])


def inline_master(
    kvn: int, protocol: Scp, method: Diversification, master: bytes
) -> ProfileCardKeys:
    """A provider holding one key set diversified from ``master``."""
    spec = KeySetSpec(kvn, protocol, method, True, "test:1: key_sets[0]", master=master)
    return open_card_keys([spec])
