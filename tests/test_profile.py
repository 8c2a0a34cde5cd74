"""Loading valid issuer profiles: the Example Corp values, defaults and what a profile shows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from provision.gp.keys import Key, Scp, SecurityLevel
from provision.profile import ChannelSpec, Overwrite, Policy, ProfileError, load_profile
from tests.profilefiles import EXAMPLE_CORP, MINIMAL, TEST_KEY, edit, load

# The RHCS guide, "Configuring Phone Home" (4.4): the values of its Example Corp.
GUIDE_ISSUER_NAME = "Example Corp"
GUIDE_PHONE_HOME_URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"
GUIDE_SERVICES = (
    ("Operation", "http://server.example.com:7888/nk_service"),
    ("UI", "http://server.example.com:7888/cgi_bin/esc.cgi"),
    ("EnrolledTokenBrowserURL", "http://www.test.example.com"),
)

# The GlobalPlatform test key 40..4F and its well-known 3DES key check value.
GP_TEST_KEY = bytes(range(0x40, 0x50))
GP_TEST_KEY_KCV = "8BAF47"


def test_example_corp_has_the_guides_values() -> None:
    profile = load_profile(EXAMPLE_CORP)

    assert profile.path == EXAMPLE_CORP
    assert profile.name == "example-corp"
    assert profile.issuer_name == GUIDE_ISSUER_NAME
    assert profile.phone_home_url == GUIDE_PHONE_HOME_URL
    assert profile.service_info == GUIDE_SERVICES


def test_example_corp_channel_and_policy() -> None:
    profile = load_profile(EXAMPLE_CORP)

    expected_level = SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION
    aid = bytes.fromhex("A000000003000000")
    assert profile.channel == ChannelSpec(Scp.SCP02, 0x15, expected_level, 0, aid)
    assert profile.policy == Policy(Overwrite.NEVER, 2)


def test_example_corp_uses_the_gp_test_keys() -> None:
    profile = load_profile(EXAMPLE_CORP)

    (key_set,) = profile.key_sets
    assert key_set.kvn == 1
    assert key_set.test_keys
    for key in (key_set.keys.enc, key_set.keys.mac, key_set.keys.dek):
        assert key == Key(GP_TEST_KEY)
        assert key.kcv == GP_TEST_KEY_KCV
    assert profile.key_set(1) is key_set


def test_content_hash_is_the_sha256_of_the_file() -> None:
    profile = load_profile(EXAMPLE_CORP)

    expected = "sha256:" + hashlib.sha256(EXAMPLE_CORP.read_bytes()).hexdigest()
    assert profile.content_hash == expected


def test_content_hash_changes_with_a_comment(tmp_path: Path) -> None:
    first = load(tmp_path, MINIMAL)
    second = load(tmp_path, "# a comment\n" + MINIMAL)

    assert first.content_hash != second.content_hash
    assert first.phone_home_url == second.phone_home_url


def test_defaults(tmp_path: Path) -> None:
    profile = load(tmp_path, MINIMAL)

    assert profile.channel.i == 0x15
    assert profile.channel.security_level == SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION
    assert profile.channel.key_version == 0
    assert profile.channel.card_manager_aid == bytes.fromhex("A000000003000000")
    assert profile.policy == Policy(Overwrite.NEVER, 2)


@pytest.mark.parametrize("text", ["", "\nservice_info:\n", "\nservice_info: {}\n"])
def test_service_info_may_be_empty(tmp_path: Path, text: str) -> None:
    without = edit('service_info:\n  Operation: "http://tps.acme.test:7888/nk_service"\n', "")
    profile = load(tmp_path, without + text)

    assert profile.service_info == ()
    assert profile.issuer_name == "Acme Tokens"


def test_service_info_keeps_order_and_plain_values(tmp_path: Path) -> None:
    services = (
        "service_info:\n"
        '  UI: "https://tps.acme.test/esc"\n'
        '  TokenType: "userKey"\n'
        '  Operation: "http://[2001:db8::1]:7888/nk_service"\n'
        "  Notes: Issued by the Acme key ceremony, 2024\n"
    )
    text = edit('service_info:\n  Operation: "http://tps.acme.test:7888/nk_service"\n', services)

    assert load(tmp_path, text).service_info == (
        ("UI", "https://tps.acme.test/esc"),
        ("TokenType", "userKey"),
        ("Operation", "http://[2001:db8::1]:7888/nk_service"),
        ("Notes", "Issued by the Acme key ceremony, 2024"),
    )


@pytest.mark.parametrize(
    ("written", "i"), [("", 0x70), ('  i: "00"\n', 0x00), ('  i: "10"\n', 0x10)]
)
def test_scp03_with_aes_keys(tmp_path: Path, written: str, i: int) -> None:
    keys = {"enc": "11" * 24, "mac": "22" * 24, "dek": "33" * 24}
    text = edit("protocol: SCP02\n", f"protocol: SCP03\n{written}")
    for role, value in keys.items():
        text = edit(f'{role}: "{TEST_KEY}"', f'{role}: "{value}"', text)

    profile = load(tmp_path, text)

    assert profile.channel.protocol is Scp.SCP03
    assert profile.channel.i == i
    assert profile.key_sets[0].keys.enc == Key(bytes.fromhex(keys["enc"]), aes=True)
    assert profile.key_sets[0].keys.dek == Key(bytes.fromhex(keys["dek"]), aes=True)
    assert profile.key_sets[0].keys.aes


def test_scp03_keys_of_different_lengths_are_refused(tmp_path: Path) -> None:
    # Amd D §4.1: one AES key length for the whole static key set.
    text = edit("protocol: SCP02\n", "protocol: SCP03\n")
    for role, value in {"enc": "11" * 16, "mac": "22" * 32, "dek": "33" * 16}.items():
        text = edit(f'{role}: "{TEST_KEY}"', f'{role}: "{value}"', text)

    with pytest.raises(ProfileError) as caught:
        load(tmp_path, text)

    assert caught.value.field == "key_sets[0].mac"
    assert "different lengths" in caught.value.problem


def test_every_channel_field(tmp_path: Path) -> None:
    channel = (
        "protocol: SCP02\n"
        '  i: "15"\n'
        '  security_level: "01"\n'
        "  key_version: 2\n"
        '  card_manager_aid: "A0 00 00 01 51 00 00 00"\n'
    )
    key_set_2 = f'  - kvn: 2\n    test_keys: true\n    enc: "{TEST_KEY}"\n'
    key_set_2 += f'    mac: "{TEST_KEY}"\n    dek: "{TEST_KEY}"\n'
    text = edit("protocol: SCP02\n", channel) + key_set_2

    profile = load(tmp_path, text)

    aid = bytes.fromhex("A000000151000000")
    assert profile.channel == ChannelSpec(Scp.SCP02, 0x15, SecurityLevel.C_MAC, 2, aid)
    assert [key_set.kvn for key_set in profile.key_sets] == [1, 2]
    assert profile.key_set(2) is profile.key_sets[1]
    assert profile.key_set(3) is None


def test_policy_fields(tmp_path: Path) -> None:
    text = MINIMAL + "policy:\n  overwrite: force\n  halt_after_key_mismatches: 5\n"

    assert load(tmp_path, text).policy == Policy(Overwrite.FORCE, 5)


def test_keys_may_be_grouped_and_lower_case(tmp_path: Path) -> None:
    grouped = " ".join(f"{byte:02x}" for byte in GP_TEST_KEY)
    text = edit(f'enc: "{TEST_KEY}"', f'enc: "{grouped}"')

    assert load(tmp_path, text).key_sets[0].keys.enc == Key(GP_TEST_KEY)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    profile = load(tmp_path, b"\xef\xbb\xbf" + MINIMAL.encode())

    assert profile.name == "acme"


def test_a_str_path_is_accepted() -> None:
    assert load_profile(str(EXAMPLE_CORP)).path == EXAMPLE_CORP


def test_repr_shows_no_key_bytes(tmp_path: Path) -> None:
    secret = bytes(range(0xA1, 0xB1))
    text = MINIMAL.replace(TEST_KEY, secret.hex().upper())

    profile = load(tmp_path, text)
    shown = repr(profile) + str(profile)

    assert profile.key_sets[0].keys.enc.value == secret
    assert secret.hex() not in shown.lower()
    assert repr(secret)[2:-1] not in shown
    assert f"Key(kcv={Key(secret).kcv})" in shown
