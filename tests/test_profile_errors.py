"""Every kind of broken profile, and that each error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import ConfigError
from provision.profile import ProfileError, load_profile
from tests.profilefiles import MINIMAL, TEST_KEY, assert_names, edit, error, line_of, load

OPERATION = '  Operation: "http://tps.acme.test:7888/nk_service"\n'
URL_LINE = 'phone_home_url: "http://tps.acme.test:7888/cgi-bin/home/index.cgi"'


def with_url(url: str) -> str:
    return edit(URL_LINE, f"phone_home_url: {url}")


def with_service(line: str) -> str:
    return edit(OPERATION, f"  {line}\n")


def with_channel(line: str) -> str:
    return edit("  protocol: SCP02\n", f"  protocol: SCP02\n  {line}\n")


def check(tmp_path: Path, text: str, fragment: str, field: str | None) -> str:
    """Load ``text``, expect an error at the line of ``fragment``, return its message."""
    path, problem = error(tmp_path, text)
    assert_names(problem, path, line_of(fragment, text), field)
    return str(problem)


def test_profile_error_is_a_config_error() -> None:
    assert issubclass(ProfileError, ConfigError)


# -- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("format: 1", 'format: "1"', "format", "a string; expected an integer; write it"),
        ("format: 1", "format: true", "format", "a boolean; expected an integer"),
        ("name: acme", "name: [acme]", "name", "a list; expected a string"),
        ("issuer_name: Acme Tokens", "issuer_name:", "issuer_name", "no value; expected"),
        ("issuer_name: Acme Tokens", "issuer_name: {a: b}", "issuer_name", "a mapping; expected"),
        ("secure_channel:\n  protocol: SCP02", "secure_channel: SCP02", "secure_channel", "a str"),
        ("kvn: 1", 'kvn: "1"', "key_sets[0].kvn", "a string; expected an integer"),
        ("kvn: 1", "kvn: true", "key_sets[0].kvn", "a boolean; expected an integer"),
        ("kvn: 1", "kvn: 1.0", "key_sets[0].kvn", "a number; expected an integer"),
        ("test_keys: true", 'test_keys: "true"', "key_sets[0].test_keys", "expected true or"),
        ("test_keys: true", "test_keys: yes", "key_sets[0].test_keys", "yes; write true or"),
        ("test_keys: true", "test_keys: 1", "key_sets[0].test_keys", "a number; expected true"),
        (f'enc: "{TEST_KEY}"', "enc: [1, 2]", "key_sets[0].enc", "a list; expected a string"),
        ("protocol: SCP02", "protocol: !!python/name:os.system", "secure_channel.protocol", "tag"),
        (OPERATION, "  Operation: 7888\n", "service_info.Operation", "YAML read this as a num"),
        (OPERATION, "  Operation: {}\n", "service_info.Operation", "a mapping; expected a str"),
    ],
)
def test_wrong_type(tmp_path: Path, old: str, new: str, field: str, expected: str) -> None:
    text = edit(old, new)

    message = check(tmp_path, text, new.strip().split("\n")[0], field)

    assert expected in message


@pytest.mark.parametrize(
    ("text", "fragment", "field", "kind"),
    [
        (MINIMAL.split("key_sets:")[0] + "key_sets:\n  kvn: 1\n", "kvn", "key_sets", "a mapping"),
        (MINIMAL + "policy: [never]\n", "[never]", "policy", "a list"),
        (MINIMAL + "policy: never\n", ": never", "policy", "a string"),
        (edit(OPERATION, "  - Operation\n"), "- Operation", "service_info", "a list"),
    ],
)
def test_wrong_collection(tmp_path: Path, text: str, fragment: str, field: str, kind: str) -> None:
    message = check(tmp_path, text, fragment, field)

    assert f"{field}: {kind}; expected a " in message


@pytest.mark.parametrize(
    ("new", "field"),
    [
        ("  halt_after_key_mismatches: 0x02", "policy.halt_after_key_mismatches"),
        ("  halt_after_key_mismatches: 010", "policy.halt_after_key_mismatches"),
        ("  halt_after_key_mismatches: 1_000", "policy.halt_after_key_mismatches"),
    ],
)
def test_integers_must_be_decimal(tmp_path: Path, new: str, field: str) -> None:
    text = MINIMAL + f"policy:\n{new}\n"

    message = check(tmp_path, text, new.strip(), field)

    assert "write it in decimal" in message


# -- the YAML 1.1 traps --------------------------------------------------------------------


YAML_11 = "YAML read this as"
YAML_12 = "YAML 1.2 reads this as"


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        (with_channel("i: 15"), "secure_channel.i", f'{YAML_11} a number; quote it: "15"'),
        (with_channel("i: 07"), "secure_channel.i", f'{YAML_11} a number; quote it: "07"'),
        (
            with_channel("security_level: 03"),
            "secure_channel.security_level",
            f'{YAML_11} a number; quote it: "03"',
        ),
        (
            with_channel("card_manager_aid: 0x1F"),
            "secure_channel.card_manager_aid",
            f'{YAML_11} a number; quote it: "0x1F"',
        ),
        (
            with_service("TokenType: NO"),
            "service_info.TokenType",
            f'{YAML_11} a boolean; quote it: "NO"',
        ),
        (
            with_service("TokenType: off"),
            "service_info.TokenType",
            f'{YAML_11} a boolean; quote it: "off"',
        ),
        (
            with_service("Built: 2001-12-14"),
            "service_info.Built",
            f'{YAML_11} a date; quote it: "2001-12-14"',
        ),
        (with_service("Label: ~"), "service_info.Label", f'{YAML_11} null; quote it: "~"'),
        (
            edit("name: acme", "name: 123456789012345678901"),
            "name",
            f'{YAML_11} a number; quote it: "123456789012345678901"',
        ),
        (edit("name: acme", "name: 1e3"), "name", f'{YAML_12} a number; quote it: "1e3"'),
        (edit("name: acme", "name: 08"), "name", f'{YAML_12} a number; quote it: "08"'),
    ],
)
def test_unquoted_value_yaml_reads_as_something_else(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    written = expected.rsplit(": ", 1)[1].strip('"')

    message = check(tmp_path, text, f": {written}", field)

    assert message.endswith(f"{field}: {expected}")


def test_unquoted_numeric_key_is_not_echoed(tmp_path: Path) -> None:
    digits = "40414243444546474849505152535455"
    text = edit(f'enc: "{TEST_KEY}"', f"enc: {digits}")

    message = check(tmp_path, text, f"enc: {digits}", "key_sets[0].enc")

    assert message.endswith("YAML read this as a number; quote it")
    assert digits not in message


# -- YAML structure ------------------------------------------------------------------------


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = MINIMAL + "name: other\n"

    message = check(tmp_path, text, "name: other", "name")

    assert f"first on line {line_of('name: acme', text)}" in message


def test_duplicate_nested_key(tmp_path: Path) -> None:
    text = edit(f'dek: "{TEST_KEY}"\n', f'dek: "{TEST_KEY}"\n    enc: "00"\n')

    message = check(tmp_path, text, 'enc: "00"', "key_sets[0].enc")

    assert f"first on line {line_of('enc:', text)}" in message


def test_tab_in_indentation(tmp_path: Path) -> None:
    text = edit("  protocol: SCP02", " \tprotocol: SCP02")
    path, problem = error(tmp_path, text)

    assert_names(problem, path, line_of("\tprotocol", text), None)
    assert problem.column == 2
    assert "a tab at column 2 in the indentation; indent with spaces" in str(problem)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        (MINIMAL + "policy: {overwrite: never\n", 16, 1),
        (edit("name: acme", 'name: "acme'), 4, 18),
        (edit("issuer_name: Acme Tokens", "issuer_name: Acme: Tokens"), 3, 18),
        (MINIMAL + "---\nformat: 1\n", 15, 1),
    ],
)
def test_syntax_error(tmp_path: Path, text: str, line: int, column: int) -> None:
    path, problem = error(tmp_path, text)

    assert_names(problem, path, line, None)
    assert problem.column == column
    assert f"YAML syntax error at column {column}: " in str(problem)
    assert "Traceback" not in str(problem)
    assert "^" not in str(problem)


def test_control_character(tmp_path: Path) -> None:
    text = edit("issuer_name: Acme Tokens", "issuer_name: Acme\x07Tokens")
    path, problem = error(tmp_path, text)

    assert_names(problem, path, 3, None)
    assert "character U+0007 at column 18 is not allowed" in str(problem)


def test_not_utf8(tmp_path: Path) -> None:
    data = edit("issuer_name: Acme Tokens", "issuer_name: Acme Tok\xe9ns").encode("latin-1")
    path, problem = error(tmp_path, data)

    assert_names(problem, path, 3, None)
    assert "byte 22 of the line is not UTF-8" in str(problem)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path, problem = error(tmp_path, text)

    assert_names(problem, path, None, None)
    assert "the file is empty" in str(problem)


@pytest.mark.parametrize(
    ("text", "kind"), [("- format: 1\n", "a list"), ("format\n", "a string"), ("1\n", "a number")]
)
def test_top_level_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path, problem = error(tmp_path, text)

    assert_names(problem, path, 1, None)
    assert f"the top level is {kind}; expected a mapping" in str(problem)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ProfileError) as raised:
        load_profile(missing)

    assert_names(raised.value, missing, None, None)
    assert "cannot read the file" in str(raised.value)


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the file"):
        load_profile(tmp_path)


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    text = MINIMAL + "policy:\n  <<: {overwrite: force}\n"

    message = check(tmp_path, text, "<<", "policy")

    assert "merge keys" in message


# -- fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "guess"),
    [
        ("issuer_name:", "issuer:", "issuer", "did you mean issuer_name? "),
        (
            "  protocol: SCP02\n",
            "  protocol: SCP02\n  protocl: SCP03\n",
            "secure_channel.protocl",
            "did you mean protocol? ",
        ),
        (
            "    test_keys: true\n",
            "    test_keys: true\n    colour: red\n",
            "key_sets[0].colour",
            "",
        ),
    ],
)
def test_unknown_field(tmp_path: Path, old: str, new: str, field: str, guess: str) -> None:
    text = edit(old, new)
    name = field.rsplit(".", 1)[-1]

    message = check(tmp_path, text, f"{name}:", field)

    assert f"{field}: unknown field {name}; {guess}expected one of " in message


def test_unknown_field_in_policy_lists_the_fields(tmp_path: Path) -> None:
    text = MINIMAL + "policy:\n  overwrite_mode: never\n"

    message = check(tmp_path, text, "overwrite_mode", "policy.overwrite_mode")

    assert message.endswith(
        "expected one of overwrite, replaces, halt_after_key_mismatches, halt_after_failures, "
        "cuid_ranges, dry_run"
    )


def test_newer_format_fails_on_its_number(tmp_path: Path) -> None:
    text = edit("format: 1", "format: 2") + "key_source: hsm\n"

    message = check(tmp_path, text, "format: 2", "format")

    assert "2 is not supported; expected 1" in message


@pytest.mark.parametrize(
    ("old", "new", "field", "at"),
    [
        ("format: 1\n", "", "format", "name: acme"),
        ("name: acme\n", "", "name", "format: 1"),
        ("issuer_name: Acme Tokens\n", "", "issuer_name", "format: 1"),
        (URL_LINE + "\n", "", "phone_home_url", "format: 1"),
        ("secure_channel:\n  protocol: SCP02\n", "", "secure_channel", "format: 1"),
        ("  protocol: SCP02\n", "  key_version: 0\n", "secure_channel.protocol", "key_version"),
        (
            "  - kvn: 1\n    test_keys: true\n",
            "  - test_keys: true\n",
            "key_sets[0].kvn",
            "- test",
        ),
        (f'    mac: "{TEST_KEY}"\n', "", "key_sets[0].mac", "kvn: 1"),
    ],
)
def test_missing_required_field(tmp_path: Path, old: str, new: str, field: str, at: str) -> None:
    """A missing field is reported at the start of the mapping that should hold it."""
    text = edit(old, new)

    message = check(tmp_path, text, at, field)

    assert f"{field}: missing; expected " in message


def test_missing_key_sets(tmp_path: Path) -> None:
    text = MINIMAL.split("key_sets:")[0]

    message = check(tmp_path, text, "format: 1", "key_sets")

    assert "missing; expected a list of key sets" in message


@pytest.mark.parametrize(
    ("name", "problem"), [("Acme", "'Acme'"), ("acme corp", "'acme corp'"), ("-acme", "'-acme'")]
)
def test_bad_profile_name(tmp_path: Path, name: str, problem: str) -> None:
    text = edit("name: acme", f'name: "{name}"')

    message = check(tmp_path, text, "name:", "name")

    assert f"name: {problem}; expected lower-case letters" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('""', "empty"),
        ('" Acme"', "spaces around the text"),
        ('"Acme\\nTokens"', "a line break or control character"),
    ],
)
def test_bad_issuer_name(tmp_path: Path, value: str, problem: str) -> None:
    text = edit("issuer_name: Acme Tokens", f"issuer_name: {value}")

    message = check(tmp_path, text, "issuer_name:", "issuer_name")

    assert f"issuer_name: {problem}" in message


# -- the Phone Home URL --------------------------------------------------------------------


def url_of_size(size: int) -> str:
    head = "http://tps.acme.test/"
    return head + "p" * (size - len(head))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ('"/cgi-bin/home/index.cgi"', "no scheme; expected an absolute URL"),
        ('"tps.acme.test/index.cgi"', "no scheme"),
        ('"ftp://tps.acme.test/index.cgi"', "scheme ftp; expected an absolute URL"),
        ('"http:///index.cgi"', "no host"),
        ('"http://tps.acme.test:99999/"', "not a URL"),
        ('"http://tps.acme.test:0/"', "port 0"),
        ('"http://tps.äcme.test/index.cgi"', "character 12 is not ASCII"),
        ('"http://tps.acme.test/home index.cgi"', "character 26 is a space or control"),
        ('"http://tps.acme.test/\\tindex.cgi"', "character 22 is a space or control"),
        ('"http://tps.acme.test/index.cgi#top"', "a fragment (#...)"),
        ('"http://tok:en@tps.acme.test/index.cgi"', "a user name or password"),
        (f'"{url_of_size(224)}"', "224 bytes; expected 10 to 223: the token's 224-byte issuer"),
        (f'"{url_of_size(500)}"', "500 bytes; expected 10 to 223"),
        ('"http"', "4 bytes; expected 10 to 223"),
        ('"http://a/"', "9 bytes; expected 10 to 223"),  # ESC.js ignores under 10 as junk
        ('""', "0 bytes; expected 10 to 223"),
    ],
)
def test_bad_phone_home_url(tmp_path: Path, url: str, problem: str) -> None:
    text = with_url(url)

    message = check(tmp_path, text, "phone_home_url:", "phone_home_url")

    assert f"phone_home_url: {problem}" in message


def test_phone_home_url_of_223_bytes_fits(tmp_path: Path) -> None:
    url = url_of_size(223)

    assert load(tmp_path, with_url(f'"{url}"')).phone_home_url == url


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('UI: "/cgi_bin/esc.cgi"', "service_info.UI", "no scheme"),
        ('CAChainUI: "ftp://tps.acme.test/ca"', "service_info.CAChainUI", "scheme ftp"),
        ('EnrolledTokenURL: "http://"', "service_info.EnrolledTokenURL", "no host"),
        ('TokenType: "user key"', "service_info.TokenType", "'user key'; expected one word"),
        ('"1Operation": "x"', "service_info.1Operation", "'1Operation'; expected an XML"),
        ('"Op eration": "x"', "service_info.Op eration", "'Op eration'; expected an XML"),
        ('IssuerName: "Acme Tokens"', "service_info.IssuerName", "IssuerName sits beside"),
        ('Note: " padded "', "service_info.Note", "spaces around the text"),
    ],
)
def test_bad_service(tmp_path: Path, line: str, field: str, problem: str) -> None:
    text = with_service(line)

    message = check(tmp_path, text, line, field)

    assert f"{field}: {problem}" in message


# -- secure channel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "i", "problem"),
    [
        ("SCP02", '"10"', "10 is not an SCP02 option this tool speaks; expected 15, 55"),
        ("SCP02", '"1A"', "1A is not an SCP02 option this tool speaks; expected 15, 55"),
        ("SCP03", '"15"', "15 is not an SCP03 option this tool speaks; expected 00, 10, 70"),
        ("SCP03", '"60"', "60 is not an SCP03 option"),
        ("SCP02", '"5"', "'5'; expected 2 hex digits: 15, 55"),
        ("SCP02", '"0x15"', "'0x15'; expected 2 hex digits"),
        ("SCP02", '"ZZ"', "'ZZ'; expected 2 hex digits"),
    ],
)
def test_bad_implementation_option(tmp_path: Path, protocol: str, i: str, problem: str) -> None:
    text = edit("protocol: SCP02", f"protocol: {protocol}\n  i: {i}")
    if protocol == "SCP03":
        text = text.replace(TEST_KEY, "00" * 16)

    message = check(tmp_path, text, f"i: {i}", "secure_channel.i")

    assert f"secure_channel.i: {problem}" in message


@pytest.mark.parametrize("protocol", ["SCP04", "scp02", '"SCP 02"'])
def test_bad_protocol(tmp_path: Path, protocol: str) -> None:
    text = edit("protocol: SCP02", f"protocol: {protocol}")

    message = check(tmp_path, text, "protocol:", "secure_channel.protocol")

    assert message.endswith("; expected SCP01 or SCP02 or SCP03")


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ('"00"', "; expected 01 or 03 or 11 or 13 or 33"),
        ('"02"', "; expected 01 or 03 or 11 or 13 or 33"),
        ('"13"', "13 is not a level of SCP02 i=15; expected 01 or 03"),
        ('"33"', "33 is not a level of SCP02 i=15; expected 01 or 03"),
        ('"3"', "; expected 01 or 03 or 11 or 13 or 33"),
    ],
)
def test_bad_security_level(tmp_path: Path, level: str, expected: str) -> None:
    text = with_channel(f"security_level: {level}")

    message = check(tmp_path, text, "security_level:", "secure_channel.security_level")

    assert message.endswith(expected)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "-1 is out of range; expected 0 to 127"),
        ("128", "128 is out of range; expected 0 to 127"),
        ("3", "3 names no key set; expected 0 or one of 1"),
    ],
)
def test_bad_key_version(tmp_path: Path, value: str, problem: str) -> None:
    text = with_channel(f"key_version: {value}")

    message = check(tmp_path, text, "key_version:", "secure_channel.key_version")

    assert f"secure_channel.key_version: {problem}" in message


@pytest.mark.parametrize(
    ("aid", "problem"),
    [
        ('"A0000000"', "4 bytes; expected an AID of 5 to 16 bytes"),
        ('"A0000000030000000000000000000000FF"', "17 bytes; expected an AID of 5 to 16"),
        ('"A00000000300000"', "15 hex digits; expected two per byte"),
        ('"A0:00:00:00:03"', "character 3 is not a hex digit"),
    ],
)
def test_bad_card_manager_aid(tmp_path: Path, aid: str, problem: str) -> None:
    text = with_channel(f"card_manager_aid: {aid}")

    message = check(tmp_path, text, "card_manager_aid:", "secure_channel.card_manager_aid")

    assert f"secure_channel.card_manager_aid: {problem}" in message


# -- key sets ------------------------------------------------------------------------------


def test_key_sets_must_not_be_empty(tmp_path: Path) -> None:
    text = MINIMAL.split("key_sets:")[0] + "key_sets: []\n"

    message = check(tmp_path, text, "key_sets: []", "key_sets")

    assert "an empty list; expected a list of at least one key set" in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    test_keys: true\n", "", "key_sets[0].enc"),
        ("test_keys: true", "test_keys: false", "key_sets[0].enc"),
    ],
)
def test_inline_keys_need_test_keys(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = edit(old, new)

    message = check(tmp_path, text, "enc:", field)

    assert "inline keys are only allowed with test_keys: true" in message
    assert "real keys come from a key source: give one as source" in message
    assert TEST_KEY not in message


def test_a_key_set_without_keys_needs_a_key_source(tmp_path: Path) -> None:
    text = MINIMAL.split("  - kvn: 1")[0] + "  - kvn: 1\n    test_keys: false\n"

    message = check(tmp_path, text, "kvn: 1", "key_sets[0].source")

    assert "missing; expected a key source: env:NAME, file:PATH or pkcs11:" in message


@pytest.mark.parametrize(
    ("protocol", "key", "problem"),
    [
        ("SCP02", "5A" * 15, "15 bytes; expected 16"),
        ("SCP02", "5A" * 24, "24 bytes; expected 16"),
        ("SCP03", "5A" * 20, "20 bytes; expected 16 or 24 or 32"),
        ("SCP02", "", "0 bytes; expected 16"),
        ("SCP02", "5A" * 15 + "5", "31 hex digits; expected two per byte"),
        ("SCP02", "5A" * 15 + "5G", "character 32 is not a hex digit; expected hex digits"),
    ],
    ids=["short", "long", "aes-192+", "empty", "odd", "not-hex"],
)
def test_bad_key(tmp_path: Path, protocol: str, key: str, problem: str) -> None:
    text = edit("protocol: SCP02", f"protocol: {protocol}")
    text = text.replace(TEST_KEY, "41" * 16)
    text = edit('mac: "' + "41" * 16, f'mac: "{key}', text)

    path, error_ = error(tmp_path, text)

    assert_names(error_, path, line_of("mac:", text), "key_sets[0].mac")
    assert error_.problem.startswith(problem)
    assert "41" not in error_.problem
    assert "5A" not in error_.problem


@pytest.mark.parametrize(
    ("kvn", "problem"),
    [
        ("0", "0 is out of range; expected 1 to 127"),
        ("128", "128 is out of range; expected 1 to 127"),
        ("255", "255 is out of range; expected 1 to 127"),
        ("0x01", "0x01 is not decimal; write it in decimal"),
        ('"01"', "a string; expected an integer"),
    ],
)
def test_bad_kvn(tmp_path: Path, kvn: str, problem: str) -> None:
    text = edit("kvn: 1", f"kvn: {kvn}")

    message = check(tmp_path, text, "kvn:", "key_sets[0].kvn")

    assert f"key_sets[0].kvn: {problem}" in message


def test_duplicate_kvn(tmp_path: Path) -> None:
    second = MINIMAL[MINIMAL.index("  - kvn: 1") :]
    text = MINIMAL + second

    path, problem = error(tmp_path, text)

    second_line = text.count("\n", 0, text.rindex("kvn: 1")) + 1
    assert_names(problem, path, second_line, "key_sets[1].kvn")
    assert "1 is also the kvn of key_sets[0]; expected each once" in str(problem)


# -- policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        (
            "overwrite: replace-listed",
            "policy.overwrite",
            "replace-listed needs policy.replaces, the values it may overwrite",
        ),
        ("overwrite: NEVER", "policy.overwrite", "'NEVER'; expected never or replace-listed or"),
        ("overwrite: no", "policy.overwrite", 'YAML read this as a boolean; quote it: "no"'),
        ("halt_after_key_mismatches: 0", "policy.halt_after_key_mismatches", "0 is out of"),
        ("halt_after_key_mismatches: -2", "policy.halt_after_key_mismatches", "-2 is out of"),
    ],
)
def test_bad_policy(tmp_path: Path, line: str, field: str, problem: str) -> None:
    text = MINIMAL + f"policy:\n  {line}\n"

    message = check(tmp_path, text, line, field)

    assert f"{field}: {problem}" in message
