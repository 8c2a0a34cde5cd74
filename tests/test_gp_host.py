"""The host side of SCP02 and SCP03 against public vectors, one test per vector file."""

from __future__ import annotations

from typing import Any

import pytest

from provision.errors import KeyMismatchError, KeyVersionError, SecureChannelError
from provision.gp.keys import KeySet, Scp, SecurityLevel, StaticKeys
from provision.gp.session import ChannelParameters, open_secure_channel
from provision.iso7816 import CommandApdu
from tests.scripted import ScriptedTransport
from tests.vectorfiles import h, load

HOST_VECTORS = [
    "scp02-kaoh-i15-cmac-getstatus",
    "scp02-kaoh-i15-cdec-cmac-install",
    "scp02-pysim-3keys-cmac-4cases",
    "scp03-kaoh-i70-aes128-getstatus",
    "scp03-kaoh-i70-aes128-getstatus-x4",
    "scp03-kaoh-i70-aes128-delete",
    "scp03-kaoh-i70-aes128-mutualauth",
    "scp03-pysim-aes128-level03",
]


def _key_set(vector: dict[str, Any]) -> KeySet:
    keys = vector["static_keys"]
    aes = vector["protocol"] == "SCP03"
    static = StaticKeys.from_bytes(h(keys["enc"]), h(keys["mac"]), h(keys["dek"]), aes=aes)
    kvn = int(vector["parsed_initialize_update"]["key_version"], 16)
    return KeySet(kvn, static)


def _params(vector: dict[str, Any]) -> ChannelParameters:
    requested_kvn = h(vector["initialize_update"]["capdu"])[2]
    return ChannelParameters(
        scp=Scp[vector["protocol"]],
        i=int(vector["scp_i"], 16),
        level=SecurityLevel(int(vector["security_level"], 16)),
        kvn=requested_kvn,
    )


def _plain(command: dict[str, Any]) -> bytes:
    return h(command.get("plain_capdu") or command["derived_plain_capdu"])


@pytest.mark.parametrize("name", HOST_VECTORS)
def test_host_session_reproduces_vector(name: str) -> None:
    vector = load(name)
    iu, ea = vector["initialize_update"], vector["external_authenticate"]
    script = [(h(iu["capdu"]), h(iu["rapdu"])), (h(ea["capdu"]), h(ea["rapdu"]))]
    for command in vector["commands"]:
        script.append((h(command["wrapped_capdu"]), h(command.get("rapdu", "9000"))))
    transport = ScriptedTransport(script)
    key_set = _key_set(vector)

    channel = open_secure_channel(
        transport,
        _params(vector),
        lambda kvn: key_set if kvn == key_set.kvn else None,
        host_challenge=h(vector["host_challenge"]),
    )
    for command in vector["commands"]:
        channel.send(CommandApdu.decode(_plain(command)))

    assert transport.done


def _first_exchange(name: str) -> tuple[dict[str, Any], ScriptedTransport]:
    vector = load(name)
    iu = vector["initialize_update"]
    return vector, ScriptedTransport([(h(iu["capdu"]), h(iu["rapdu"]))])


def test_wrong_key_stops_before_external_authenticate() -> None:
    vector, transport = _first_exchange("scp02-kaoh-i15-cmac-getstatus")
    wrong = StaticKeys.from_bytes(bytes(16), bytes(16), bytes(16), aes=False)

    with pytest.raises(KeyMismatchError) as caught:
        open_secure_channel(
            transport,
            _params(vector),
            lambda kvn: KeySet(kvn, wrong),
            host_challenge=h(vector["host_challenge"]),
        )

    assert [apdu[1] for apdu in transport.sent] == [0x50]
    assert "EXTERNAL AUTHENTICATE was not sent" in str(caught.value)


def test_no_key_set_for_reported_version_names_both_versions() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i70-aes128-getstatus")

    with pytest.raises(KeyVersionError) as caught:
        open_secure_channel(
            transport,
            _params(vector),
            lambda kvn: None,
            host_challenge=h(vector["host_challenge"]),
        )

    assert "reports key version 30" in str(caught.value)
    assert "00 (any)" in str(caught.value)
    assert len(transport.sent) == 1


def test_card_without_requested_key_version() -> None:
    transport = ScriptedTransport([(h("8050050008" + "11" * 8 + "00"), h("6A88"))])
    params = ChannelParameters(Scp.SCP02, 0x15, SecurityLevel.C_MAC, kvn=5)

    with pytest.raises(KeyVersionError, match="no key set with version 05"):
        open_secure_channel(transport, params, lambda kvn: None, host_challenge=b"\x11" * 8)


def test_protocol_other_than_profile_is_refused() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i70-aes128-getstatus")
    params = ChannelParameters(Scp.SCP02, 0x15, SecurityLevel.C_MAC)

    with pytest.raises(SecureChannelError, match="speaks SCP03"):
        open_secure_channel(
            transport, params, lambda kvn: None, host_challenge=h(vector["host_challenge"])
        )


def test_session_repr_shows_no_secret() -> None:
    vector = load("scp02-kaoh-i15-cmac-getstatus")
    iu, ea = vector["initialize_update"], vector["external_authenticate"]
    transport = ScriptedTransport([(h(iu["capdu"]), h(iu["rapdu"])), (h(ea["capdu"]), h("9000"))])
    key_set = _key_set(vector)
    channel = open_secure_channel(
        transport, _params(vector), lambda kvn: key_set, host_challenge=h(vector["host_challenge"])
    )

    text = repr(channel) + repr(key_set)
    for secret in [*vector["derived"]["session_keys"].values(), vector["static_keys"]["enc"]]:
        assert secret.upper() not in text.upper()
    assert "8BAF47" in repr(key_set)  # the KCV of the 40..4F test key (GPPro, GPC E.4.7)
