"""Issuer profiles: what an issuer burns onto its tokens and how to reach their card managers.

A profile is a YAML file in format 1, described field by field in ``profiles/README.md``.
The loader composes YAML nodes and never constructs Python objects from them: every value
keeps its line and its source text, so an error points at the value as it was written, and
no YAML tag can run code.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum, unique
from pathlib import Path
from string import hexdigits
from urllib.parse import SplitResult, urlsplit

import yaml

from .errors import ConfigError
from .gp.keys import C_MAC_C_DEC, Key, KeySet, Scp, SecurityLevel, StaticKeys

FORMAT = 1

# The CoolKey applet keeps issuer info in a 224-byte buffer that the client reads as a
# C string, so the URL and its terminating NUL must both fit.
ISSUER_INFO_SIZE = 224
URL_MIN_BYTES = 5
URL_MAX_BYTES = ISSUER_INFO_SIZE - 1

DEFAULT_CARD_MANAGER_AID = bytes.fromhex("A000000003000000")
DEFAULT_SECURITY_LEVEL = "03"
DEFAULT_HALT_AFTER_KEY_MISMATCHES = 2

# The implementation options this tool's secure channels speak (GPC 2.3.1 E.1.1, Amd D 5.1).
I_OPTIONS = {Scp.SCP02: (0x15,), Scp.SCP03: (0x00, 0x10, 0x70)}
DEFAULT_I = {Scp.SCP02: 0x15, Scp.SCP03: 0x70}
SECURITY_LEVELS = {"01": SecurityLevel.C_MAC, "03": C_MAC_C_DEC}
KEY_SIZES = {Scp.SCP02: (16, 24), Scp.SCP03: (16, 24, 32)}
KVN_MIN, KVN_MAX = 1, 127

# The services whose text the Enterprise Security Client opens or posts to.
URL_SERVICES = frozenset(
    {"Operation", "UI", "EnrolledTokenBrowserURL", "EnrolledTokenURL", "CAChainUI"}
)

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_WORD = re.compile(r"[A-Za-z0-9_.-]+")
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")  # the breaks YAML counts lines by

# Unquoted text that YAML 1.2 reads as a number although PyYAML's YAML 1.1 rules keep it a
# string (1e3, 08, 0o17). Asking for quotes keeps the file's meaning the same in every tool.
_YAML12_NUMBER = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|0o[0-7]+|0x[0-9A-Fa-f]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL = _TAG + "str", _TAG + "int", _TAG + "bool", _TAG + "null"
_MAP, _SEQ, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "merge"
_READ_AS = {
    _INT: "a number",
    _TAG + "float": "a number",
    _BOOL: "a boolean",
    _NULL: "null",
    _TAG + "timestamp": "a date",
}
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")
_HEX_OR_SPACE = frozenset(hexdigits + " ")
_KEY_ROLES = ("enc", "mac", "dek")

_TOP_FIELDS = (
    "format",
    "name",
    "issuer_name",
    "phone_home_url",
    "service_info",
    "secure_channel",
    "key_sets",
    "policy",
)
_CHANNEL_FIELDS = ("protocol", "i", "security_level", "key_version", "card_manager_aid")
_KEY_SET_FIELDS = ("kvn", "test_keys", *_KEY_ROLES)
_POLICY_FIELDS = ("overwrite", "halt_after_key_mismatches")


class ProfileError(ConfigError):
    """A profile file is unreadable or breaks the format.

    The message reads ``<path>:<line>: <field>: <problem>``, leaving out the line or the
    field when there is none to name. It never quotes key material.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int | None,
        field: str | None,
        problem: str,
        *,
        column: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.column = column
        self.problem = problem
        where = str(self.path) if line is None else f"{self.path}:{line}"
        what = f"{field}: {problem}" if field else problem
        super().__init__(f"{where}: {what}")


@unique
class Overwrite(StrEnum):
    """What to do with a token that already holds other issuer info."""

    NEVER = "never"
    FORCE = "force"


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """How to open the secure channel to the card manager."""

    protocol: Scp
    i: int
    security_level: SecurityLevel
    key_version: int
    card_manager_aid: bytes


@dataclass(frozen=True, slots=True)
class Policy:
    """How a batch treats tokens it should not or cannot burn."""

    overwrite: Overwrite
    halt_after_key_mismatches: int


@dataclass(frozen=True, slots=True)
class Profile:
    """One issuer's checked profile. Its repr shows keys by their KCVs only."""

    path: Path
    name: str
    issuer_name: str
    phone_home_url: str
    service_info: tuple[tuple[str, str], ...]
    channel: ChannelSpec
    key_sets: tuple[KeySet, ...]
    policy: Policy
    content_hash: str

    def key_set(self, kvn: int) -> KeySet | None:
        """The key set with version ``kvn``, or None when the profile has none."""
        return next((key_set for key_set in self.key_sets if key_set.kvn == kvn), None)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read, parse and check the profile at ``path``; raises ProfileError on any fault."""
    path = Path(path)
    data = _read(path)
    text = _decode(path, data)
    _reject_tabs(path, text)

    root = _compose(path, text)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return _profile(_Reader(path), root, digest)


# -- from file to YAML nodes ----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader used to compose only: nodes keep their marks, no tag is constructed."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProfileError(path, None, None, f"cannot read the file: {reason}") from None


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = f"byte {column} of the line is not UTF-8; save the file as UTF-8"
        raise ProfileError(path, line, None, problem, column=column) from None


def _reject_tabs(path: Path, text: str) -> None:
    # PyYAML's message for a tab in the indentation ("found character '\t' that cannot
    # start any token") is obscure, and some tabs it accepts silently, so look first.
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            column = indent.index("\t") + 1
            problem = f"a tab at column {column} in the indentation; indent with spaces only"
            raise ProfileError(path, number, None, problem, column=column)


def _compose(path: Path, text: str) -> yaml.Node:
    try:
        loader = _Loader(text)  # the reader checks for unprintable characters here
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, exc) from None
    except yaml.reader.ReaderError as exc:
        raise _character_error(path, text, exc) from None

    # A document of nothing but "---" composes to an empty scalar.
    if root is None or (_is_null(root) and root.value == ""):
        raise ProfileError(path, None, None, f"the file is empty; expected format: {FORMAT}")
    return root


_PARSER_WORDS = {
    "<stream end>": "the end of the file",
    "<block end>": "the end of an indented block",
    "<block mapping start>": "an indented mapping",
    "<block sequence start>": "an indented list",
    "<scalar>": "a value",
}
_SECOND_DOCUMENT = "but found another document"


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> ProfileError:
    # Only PyYAML's own words are kept: its snippet of the line could show a key.
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    at = f" at column {column}" if column else ""

    problem = re.sub(r"'(<[a-z ]+>)'", r"\1", exc.problem or exc.context or "unreadable YAML")
    for words, plain in _PARSER_WORDS.items():
        problem = problem.replace(words, plain)
    context, context_mark = exc.context or "", exc.context_mark
    if context.startswith("while ") and context_mark and mark and context_mark.line != mark.line:
        problem += f" ({context} that began on line {context_mark.line + 1})"

    hint = "check the indentation, quotes and brackets here and on the lines before"
    if exc.problem == _SECOND_DOCUMENT:
        problem, hint = "a second document begins", "a profile is one YAML document"
    return ProfileError(
        path, line, None, f"YAML syntax error{at}: {problem}; {hint}", column=column
    )


def _character_error(path: Path, text: str, exc: yaml.reader.ReaderError) -> ProfileError:
    breaks = list(_LINE_BREAK.finditer(text, 0, exc.position))
    line = len(breaks) + 1
    column = exc.position - (breaks[-1].end() if breaks else 0) + 1
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    problem = f"character U+{code:04X} at column {column} is not allowed in YAML; remove it"
    return ProfileError(path, line, None, problem, column=column)


# -- from nodes to typed values -------------------------------------------------------------


def _line(node: yaml.Node) -> int | None:
    return node.start_mark.line + 1 if node.start_mark else None


def _kind(node: yaml.Node) -> str:
    """What a value is, for a message saying it is not what the field wants."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL and node.value == "":
        return "no value"
    if node.tag == _STR:
        return "a string"
    if node.tag in _READ_AS:
        return _READ_AS[node.tag]
    return f"tagged !!{node.tag.removeprefix(_TAG)}"


def _is_null(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


@dataclass(frozen=True, slots=True)
class _Map:
    """A YAML mapping whose keys are checked to be unique strings."""

    node: yaml.MappingNode
    field: str
    key_nodes: dict[str, yaml.Node]
    values: dict[str, yaml.Node]

    def sub(self, name: str) -> str:
        return f"{self.field}.{name}" if self.field else name


class _Reader:
    """Reads typed values out of one profile's nodes, naming the file in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, node: yaml.Node, field: str, problem: str) -> ProfileError:
        return ProfileError(self.path, _line(node), field or None, problem)

    def mapping(self, node: yaml.Node, field: str, allowed: tuple[str, ...] | None) -> _Map:
        """The mapping at ``node``; with ``allowed`` None, any string keys are taken."""
        if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
            raise self.error(node, field, f"{_kind(node)}; expected a mapping")

        key_nodes: dict[str, yaml.Node] = {}
        values: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = self._key(key_node, field, key_nodes)
            key_nodes[name], values[name] = key_node, value_node

        mapping = _Map(node, field, key_nodes, values)
        if allowed is not None:
            self.reject_unknown(mapping, allowed)
        return mapping

    def _key(self, node: yaml.Node, field: str, seen: dict[str, yaml.Node]) -> str:
        if node.tag == _MERGE:
            raise self.error(node, field, "merge keys (<<) are not supported; write fields out")
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            text = f" {node.value}" if isinstance(node, yaml.ScalarNode) else ""
            raise self.error(node, field, f"the key{text} is {_kind(node)}; expected a name")

        name: str = node.value
        if name in seen:
            first = _line(seen[name])
            sub = f"{field}.{name}" if field else name
            raise self.error(node, sub, f"duplicate key, first on line {first}; keep one")
        return name

    def reject_unknown(self, mapping: _Map, allowed: tuple[str, ...]) -> None:
        for name, key_node in mapping.key_nodes.items():
            if name in allowed:
                continue
            close = difflib.get_close_matches(name, allowed, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            problem = f"unknown field {name}; {guess}expected one of {', '.join(allowed)}"
            raise self.error(key_node, mapping.sub(name), problem)

    def require(self, mapping: _Map, name: str, expected: str) -> yaml.Node:
        node = mapping.values.get(name)
        if node is None:
            raise self.error(mapping.node, mapping.sub(name), f"missing; expected {expected}")
        return node

    def string(self, node: yaml.Node, field: str, *, secret: bool = False) -> str:
        """A YAML string, refusing unquoted text that YAML reads as something else.

        With ``secret`` the quoting hint leaves out the value.
        """
        plain = isinstance(node, yaml.ScalarNode) and node.style is None
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            value: str = node.value
            if not (plain and _YAML12_NUMBER.fullmatch(value)):
                return value
            raise self._quote_it(node, field, "YAML 1.2 reads this as a number", secret)

        if plain and node.tag in _READ_AS and node.value:
            raise self._quote_it(node, field, f"YAML read this as {_READ_AS[node.tag]}", secret)
        raise self.error(node, field, f"{_kind(node)}; expected a string")

    def _quote_it(self, node: yaml.Node, field: str, problem: str, secret: bool) -> ProfileError:
        hint = "quote it" if secret else f'quote it: "{node.value}"'
        return self.error(node, field, f"{problem}; {hint}")

    def integer(self, node: yaml.Node, field: str, low: int, high: int | None = None) -> int:
        """A decimal integer from ``low`` to ``high``, or upwards when ``high`` is None."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            quoted = isinstance(node, yaml.ScalarNode) and _DECIMAL.fullmatch(node.value)
            hint = "; write it without quotes" if quoted else ""
            raise self.error(node, field, f"{_kind(node)}; expected an integer{hint}")
        if not _DECIMAL.fullmatch(node.value):
            raise self.error(node, field, f"{node.value} is not decimal; write it in decimal")

        value = int(node.value)
        if value < low or (high is not None and value > high):
            bounds = f"{low} or more" if high is None else f"{low} to {high}"
            raise self.error(node, field, f"{value} is out of range; expected {bounds}")
        return value

    def boolean(self, node: yaml.Node, field: str) -> bool:
        """true or false; YAML 1.1's yes, no, on and off are refused as too easy to misread."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            if node.value in _TRUE + _FALSE:
                return node.value in _TRUE
            raise self.error(node, field, f"{node.value}; write true or false")
        raise self.error(node, field, f"{_kind(node)}; expected true or false")

    def choice(self, node: yaml.Node, field: str, choices: tuple[str, ...]) -> str:
        value = self.string(node, field)
        if value not in choices:
            raise self.error(node, field, f"{value!r}; expected {' or '.join(choices)}")
        return value

    def hex_bytes(self, node: yaml.Node, field: str, *, secret: bool = False) -> bytes:
        """Hex digits in either case; spaces are ignored so that bytes can be grouped."""
        text = self.string(node, field, secret=secret)
        bad = next((n for n, char in enumerate(text, 1) if char not in _HEX_OR_SPACE), None)
        if bad is not None:
            problem = f"character {bad} is not a hex digit; expected hex digits and spaces"
            raise self.error(node, field, problem)

        digits = text.replace(" ", "")
        if len(digits) % 2:
            raise self.error(node, field, f"{len(digits)} hex digits; expected two per byte")
        return bytes.fromhex(digits)

    def plain_text(self, node: yaml.Node, field: str) -> str:
        """One line of printable text with no spaces around it."""
        value = self.string(node, field)
        if not value:
            raise self.error(node, field, "empty; expected some text")
        if not value.isprintable():
            raise self.error(node, field, "a line break or control character; expected one line")
        if value != value.strip():
            raise self.error(node, field, "spaces around the text; remove them")
        return value


# -- the profile, section by section -------------------------------------------------------


def _profile(reader: _Reader, root: yaml.Node, content_hash: str) -> Profile:
    if not isinstance(root, yaml.MappingNode):
        problem = f"the top level is {_kind(root)}; expected a mapping of the profile's fields"
        raise reader.error(root, "", problem)
    top = reader.mapping(root, "", None)
    _check_format(reader, top)
    reader.reject_unknown(top, _TOP_FIELDS)

    name = _profile_name(reader, reader.require(top, "name", "a short name for reports"))
    issuer_node = reader.require(top, "issuer_name", "the issuer name the server answers with")
    issuer_name = reader.plain_text(issuer_node, "issuer_name")
    url = _phone_home_url(reader, reader.require(top, "phone_home_url", "an http(s) URL"))
    service_info = _service_info(reader, top.values.get("service_info"))

    channel_node = reader.require(top, "secure_channel", "a mapping with a protocol")
    channel_section = reader.mapping(channel_node, "secure_channel", _CHANNEL_FIELDS)
    channel = _channel(reader, channel_section)
    key_sets = _key_sets(reader, reader.require(top, "key_sets", "a list of key sets"), channel)
    _check_key_version(reader, channel_section, channel, key_sets)

    policy = _policy(reader, top.values.get("policy"))
    return Profile(
        reader.path, name, issuer_name, url, service_info, channel, key_sets, policy, content_hash
    )


def _check_format(reader: _Reader, top: _Map) -> None:
    # Checked before any other field, so that a newer file fails on its format number
    # rather than on the first field this version does not know.
    node = reader.require(top, "format", f"format: {FORMAT}")
    version = reader.integer(node, "format", 0)
    if version != FORMAT:
        raise reader.error(node, "format", f"{version} is not supported; expected {FORMAT}")


def _profile_name(reader: _Reader, node: yaml.Node) -> str:
    name = reader.string(node, "name")
    if not _NAME.fullmatch(name):
        expected = "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
        raise reader.error(node, "name", f"{name!r}; expected {expected}")
    return name


def _phone_home_url(reader: _Reader, node: yaml.Node) -> str:
    field = "phone_home_url"
    url = _url_text(reader, node, field)

    size = len(url.encode("ascii"))
    if not URL_MIN_BYTES <= size <= URL_MAX_BYTES:
        why = f"the token's {ISSUER_INFO_SIZE}-byte issuer info also holds a terminating NUL"
        problem = f"{size} bytes; expected {URL_MIN_BYTES} to {URL_MAX_BYTES}: {why}"
        raise reader.error(node, field, problem)

    parts = _http_url(reader, node, field, url)
    if parts.username is not None:
        problem = "a user name or password; remove it: anyone can read a token's issuer info"
        raise reader.error(node, field, problem)
    if "#" in url:
        raise reader.error(node, field, "a fragment (#...); remove it: it is never sent")
    return url


def _url_text(reader: _Reader, node: yaml.Node, field: str) -> str:
    url = reader.string(node, field)
    for number, char in enumerate(url, 1):
        if not char.isascii():
            expected = "ASCII only: punycode in host names, %-escapes elsewhere"
            raise reader.error(
                node, field, f"character {number} is not ASCII; expected {expected}"
            )
        if char <= " " or char == "\x7f":
            problem = f"character {number} is a space or control character; %-escape it"
            raise reader.error(node, field, problem)
    return url


def _http_url(reader: _Reader, node: yaml.Node, field: str, url: str) -> SplitResult:
    expected = "expected an absolute URL such as http://host:port/path"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise reader.error(node, field, f"not a URL ({exc}); {expected}") from None

    if parts.scheme not in ("http", "https"):
        scheme = f"scheme {parts.scheme}" if parts.scheme else "no scheme"
        raise reader.error(node, field, f"{scheme}; {expected}, http or https")
    if not parts.hostname:
        raise reader.error(node, field, f"no host; {expected}")
    if port == 0:
        raise reader.error(node, field, f"port 0; {expected}")
    return parts


def _service_info(reader: _Reader, node: yaml.Node | None) -> tuple[tuple[str, str], ...]:
    if node is None or _is_null(node):
        return ()

    mapping = reader.mapping(node, "service_info", None)
    return tuple((name, _service_value(reader, mapping, name)) for name in mapping.values)


def _service_value(reader: _Reader, mapping: _Map, name: str) -> str:
    field, key_node, node = mapping.sub(name), mapping.key_nodes[name], mapping.values[name]
    if not _XML_NAME.fullmatch(name):
        expected = "an XML element name: letters, digits, '_', '-', '.', not starting with a digit"
        raise reader.error(key_node, field, f"{name!r}; expected {expected}")
    if name == "IssuerName":
        problem = "IssuerName sits beside Services, not inside; give it as issuer_name"
        raise reader.error(key_node, field, problem)

    if name in URL_SERVICES:
        url = _url_text(reader, node, field)
        _http_url(reader, node, field, url)
        return url
    value = reader.plain_text(node, field)
    if name == "TokenType" and not _WORD.fullmatch(value):
        raise reader.error(
            node, field, f"{value!r}; expected one word: letters, digits, '_', '-', '.'"
        )
    return value


def _channel(reader: _Reader, section: _Map) -> ChannelSpec:
    protocol_node = reader.require(section, "protocol", "SCP02 or SCP03")
    protocol = Scp[reader.choice(protocol_node, section.sub("protocol"), ("SCP02", "SCP03"))]
    i = _implementation_option(reader, section, protocol)

    level = DEFAULT_SECURITY_LEVEL
    if (level_node := section.values.get("security_level")) is not None:
        level = reader.choice(level_node, section.sub("security_level"), tuple(SECURITY_LEVELS))

    key_version = 0
    if (kvn_node := section.values.get("key_version")) is not None:
        key_version = reader.integer(kvn_node, section.sub("key_version"), 0, KVN_MAX)

    aid = _card_manager_aid(reader, section)
    return ChannelSpec(protocol, i, SECURITY_LEVELS[level], key_version, aid)


def _implementation_option(reader: _Reader, section: _Map, protocol: Scp) -> int:
    node = section.values.get("i")
    if node is None:
        return DEFAULT_I[protocol]

    field = section.sub("i")
    text = reader.string(node, field)
    allowed = I_OPTIONS[protocol]
    choices = ", ".join(f"{option:02X}" for option in allowed)
    if len(text) != 2 or any(char not in hexdigits for char in text):
        raise reader.error(node, field, f"{text!r}; expected 2 hex digits: {choices}")

    i = int(text, 16)
    if i not in allowed:
        problem = f"{i:02X} is not an {protocol.name} option this tool speaks; expected {choices}"
        raise reader.error(node, field, problem)
    return i


def _card_manager_aid(reader: _Reader, section: _Map) -> bytes:
    node = section.values.get("card_manager_aid")
    if node is None:
        return DEFAULT_CARD_MANAGER_AID

    # ISO/IEC 7816-5: a 5-byte registered application provider id and up to 11 more bytes.
    field = section.sub("card_manager_aid")
    aid = reader.hex_bytes(node, field)
    if not 5 <= len(aid) <= 16:
        raise reader.error(node, field, f"{len(aid)} bytes; expected an AID of 5 to 16 bytes")
    return aid


def _key_sets(reader: _Reader, node: yaml.Node, channel: ChannelSpec) -> tuple[KeySet, ...]:
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ or not node.value:
        kind = "an empty list" if isinstance(node, yaml.SequenceNode) else _kind(node)
        raise reader.error(node, "key_sets", f"{kind}; expected a list of at least one key set")

    key_sets: list[KeySet] = []
    for index, item in enumerate(node.value):
        section = reader.mapping(item, f"key_sets[{index}]", _KEY_SET_FIELDS)
        key_set = _key_set(reader, section, channel.protocol)

        first = next((n for n, other in enumerate(key_sets) if other.kvn == key_set.kvn), None)
        if first is not None:
            problem = f"{key_set.kvn} is also the kvn of key_sets[{first}]; expected each once"
            raise reader.error(section.values["kvn"], section.sub("kvn"), problem)
        key_sets.append(key_set)
    return tuple(key_sets)


def _key_set(reader: _Reader, section: _Map, protocol: Scp) -> KeySet:
    kvn_node = reader.require(section, "kvn", f"a key version number, {KVN_MIN} to {KVN_MAX}")
    # XXX: kvn FF, the initial key set some factory cards report, is outside 1..127.
    kvn = reader.integer(kvn_node, section.sub("kvn"), KVN_MIN, KVN_MAX)

    test_node = section.values.get("test_keys")
    if test_node is None or not reader.boolean(test_node, section.sub("test_keys")):
        raise _no_key_source(reader, section)

    enc, mac, dek = (_key(reader, section, role, protocol) for role in _KEY_ROLES)
    return KeySet(kvn, StaticKeys(enc, mac, dek), test_keys=True)


def _no_key_source(reader: _Reader, section: _Map) -> ProfileError:
    # XXX: no key source yet, so only the inline keys of a test_keys: true set can be loaded.
    missing = "real keys will come from a key source, which this version does not have yet"
    role = next((role for role in _KEY_ROLES if role in section.values), None)
    if role is not None:
        problem = f"inline keys are only allowed with test_keys: true; {missing}"
        return reader.error(section.values[role], section.sub(role), problem)

    node = section.values.get("test_keys")
    state = "missing" if node is None else "false"
    problem = f"{state}; {missing}, so only a test_keys: true set with enc, mac and dek can load"
    return reader.error(node or section.node, section.sub("test_keys"), problem)


def _key(reader: _Reader, section: _Map, role: str, protocol: Scp) -> Key:
    field = section.sub(role)
    node = reader.require(section, role, "the key in hex")
    value = reader.hex_bytes(node, field, secret=True)

    sizes = KEY_SIZES[protocol]
    if len(value) not in sizes:
        expected = " or ".join(map(str, sizes))
        raise reader.error(node, field, f"{len(value)} bytes; expected {expected}")
    return Key(value, aes=protocol is Scp.SCP03)


def _check_key_version(
    reader: _Reader, section: _Map, channel: ChannelSpec, key_sets: tuple[KeySet, ...]
) -> None:
    # A fixed key version that names none of the key sets could never open a channel.
    key_version = channel.key_version
    if key_version == 0 or any(key_set.kvn == key_version for key_set in key_sets):
        return

    kvns = ", ".join(str(key_set.kvn) for key_set in key_sets)
    problem = f"{key_version} names no key set; expected 0 or one of {kvns}"
    raise reader.error(section.values["key_version"], section.sub("key_version"), problem)


def _policy(reader: _Reader, node: yaml.Node | None) -> Policy:
    if node is None:
        return Policy(Overwrite.NEVER, DEFAULT_HALT_AFTER_KEY_MISMATCHES)
    section = reader.mapping(node, "policy", _POLICY_FIELDS)

    overwrite = Overwrite.NEVER
    if (overwrite_node := section.values.get("overwrite")) is not None:
        choices = tuple(member.value for member in Overwrite)
        overwrite = Overwrite(reader.choice(overwrite_node, section.sub("overwrite"), choices))

    halt = DEFAULT_HALT_AFTER_KEY_MISMATCHES
    if (halt_node := section.values.get("halt_after_key_mismatches")) is not None:
        halt = reader.integer(halt_node, section.sub("halt_after_key_mismatches"), 1)
    return Policy(overwrite, halt)
