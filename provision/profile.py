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
from dataclasses import dataclass, replace
from enum import StrEnum, unique
from pathlib import Path
from string import hexdigits
from urllib.parse import SplitResult, urlsplit

import yaml

from .coolkey import DEFAULT_CARD_MANAGER_AID, ISSUER_INFO_SIZE
from .errors import ConfigError
from .gp.diversify import MASTER_KEY_SIZES, Diversification
from .gp.keys import LEVELS, STATIC_KEY_SIZES, Key, Scp, SecurityLevel, StaticKeys
from .gp.session import supported_levels
from .keysource.spec import KeySetSpec, Pkcs11Source, parse_key_source
from .phonehome._text import url_problem
from .phonehome.issuer_info import ESC_MIN_LENGTH
from .phonehome.serviceinfo import ServiceInfo

FORMAT = 1

# TPS refuses values under 5 bytes, and ESC ignores any under 10 as junk (ESC.js). The
# applet's 224-byte buffer is read as a C string: the URL and its NUL must both fit.
URL_MIN_BYTES = ESC_MIN_LENGTH
URL_MAX_BYTES = ISSUER_INFO_SIZE - 1

DEFAULT_TOKEN_TYPE = "userKey"  # noqa: S105 (a TPS token type, not a secret)
DEFAULT_SECURITY_LEVEL = "03"
DEFAULT_HALT_AFTER_KEY_MISMATCHES = 2
DEFAULT_HALT_AFTER_FAILURES = 5

# The implementation options this tool's secure channels speak (GPC 2.1.1 D.1.1,
# GPC 2.3.1 E.1.1, Amd D 5.1).
I_OPTIONS = {Scp.SCP01: (0x05, 0x15), Scp.SCP02: (0x15, 0x55), Scp.SCP03: (0x00, 0x10, 0x70)}
DEFAULT_I = {Scp.SCP01: 0x05, Scp.SCP02: 0x15, Scp.SCP03: 0x70}
SECURITY_LEVELS = LEVELS
MAX_PROFILE_BYTES = 1024 * 1024
PROTOCOLS = ("SCP01", "SCP02", "SCP03")
KEY_SOURCES = "env:NAME, file:PATH or pkcs11:token=...;object=...?module-path=...&pin-source=..."
KVN_MIN, KVN_MAX = 1, 127

# The services whose text the Enterprise Security Client opens or posts to.
URL_SERVICES = frozenset(
    {"Operation", "UI", "EnrolledTokenBrowserURL", "EnrolledTokenURL", "CAChainUI"}
)

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_WORD = re.compile(r"[A-Za-z0-9_-]+")  # as the client side checks TokenType
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
    "extends",
    "token_type",
)
_CHANNEL_FIELDS = ("protocol", "i", "security_level", "key_version", "card_manager_aid")
_KEY_SET_FIELDS = ("kvn", "test_keys", "diversification", "source", *_KEY_ROLES, "master")
_POLICY_FIELDS = (
    "overwrite",
    "replaces",
    "halt_after_key_mismatches",
    "halt_after_failures",
    "cuid_ranges",
    "dry_run",
)


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
    REPLACE_LISTED = "replace-listed"  # only values listed in policy.replaces
    FORCE = "force"


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """How to open the secure channel to the card manager."""

    protocol: Scp
    i: int
    security_level: SecurityLevel
    key_version: int
    card_manager_aid: bytes


CUID_BYTES = 10
_CUID_SEPARATORS = str.maketrans("", "", " :-")


@dataclass(frozen=True, slots=True)
class CuidRange:
    """An inclusive range of CUIDs, compared as 10-byte unsigned big-endian values."""

    low: bytes
    high: bytes

    def __contains__(self, cuid: object) -> bool:
        return isinstance(cuid, bytes) and self.low <= cuid <= self.high

    def __str__(self) -> str:
        if self.low == self.high:
            return self.low.hex().upper()
        return f"{self.low.hex().upper()}..{self.high.hex().upper()}"


def parse_cuid(text: str) -> bytes:
    """A CUID as 10 bytes from 20 hex digits in either case; spaces, ':' and '-' are ignored."""
    digits = text.translate(_CUID_SEPARATORS)
    if not digits or any(char not in hexdigits for char in digits):
        raise ValueError(f"{text!r} is not a CUID; expected {2 * CUID_BYTES} hex digits")
    if len(digits) != 2 * CUID_BYTES:
        hint = "; write a range as LOW..HIGH" if len(digits) == 4 * CUID_BYTES else ""
        raise ValueError(
            f"{text!r} has {len(digits)} hex digits; a CUID has {2 * CUID_BYTES}{hint}"
        )
    return bytes.fromhex(digits)


def parse_cuid_range(text: str) -> CuidRange:
    """``LOW..HIGH``, ``PREFIX*`` or a single CUID; see profiles/README.md, Policy."""
    if ".." in text:
        low_text, _, high_text = text.partition("..")
        low, high = parse_cuid(low_text), parse_cuid(high_text)
        if low > high:
            raise ValueError(f"{text!r} runs backwards; write the lower CUID first")
        return CuidRange(low, high)

    if text.endswith("*"):
        digits = text[:-1].translate(_CUID_SEPARATORS)
        if not 1 <= len(digits) < 2 * CUID_BYTES or any(c not in hexdigits for c in digits):
            raise ValueError(
                f"{text!r} is not a CUID prefix; expected 1 to {2 * CUID_BYTES - 1} hex digits "
                "before the *"
            )
        pad = 2 * CUID_BYTES - len(digits)
        return CuidRange(bytes.fromhex(digits + "0" * pad), bytes.fromhex(digits + "F" * pad))

    cuid = parse_cuid(text)
    return CuidRange(cuid, cuid)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a batch treats tokens it should not or cannot burn."""

    overwrite: Overwrite
    halt_after_key_mismatches: int
    replaces: tuple[str, ...] = ()
    halt_after_failures: int = DEFAULT_HALT_AFTER_FAILURES
    cuid_ranges: tuple[CuidRange, ...] = ()  # empty: every CUID is allowed
    dry_run: bool = False

    def allows(self, cuid: bytes) -> bool:
        """Whether the CUID lies in one of the allowed ranges (all do when none is set)."""
        return not self.cuid_ranges or any(cuid in allowed for allowed in self.cuid_ranges)


@dataclass(frozen=True, slots=True)
class Profile:
    """One issuer's checked profile. Its repr shows keys by their KCVs only."""

    path: Path
    name: str
    issuer_name: str
    phone_home_url: str
    service_info: tuple[tuple[str, str], ...]
    channel: ChannelSpec
    key_sets: tuple[KeySetSpec, ...]
    policy: Policy
    content_hash: str
    token_type: str = DEFAULT_TOKEN_TYPE
    bases: tuple[Path, ...] = ()  # the profiles it extends, nearest first
    inherited: tuple[Inherited, ...] = ()  # the fields taken from a base, in file order

    def expected_service_info(self) -> ServiceInfo:
        """The ServiceInfo this issuer's Phone Home server must answer with."""
        return ServiceInfo(self.issuer_name, self.service_info)

    def key_set(self, kvn: int) -> KeySetSpec | None:
        """The key set with version ``kvn``, or None when the profile has none."""
        return next((key_set for key_set in self.key_sets if key_set.kvn == kvn), None)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read, parse and check the profile at ``path``; raises ProfileError on any fault.

    A profile that ``extends`` a base is merged with it first (see :func:`_load_tree`), so
    every section reader below sees one mapping whose nodes still name their own file.
    """
    path = Path(path)
    try:
        tree = _load_tree(path, ())
        reader = _Reader(path, tree.files)
        profile = _profile(reader, tree.root, tree.content_hash())
    except RecursionError:
        problem = "nested far too deeply; a profile is a few levels of mappings and lists"
        raise ProfileError(path, None, None, problem) from None

    token_type = _token_type(reader, reader.mapping(tree.root, "", None))
    return replace(
        profile,
        token_type=token_type,
        bases=tree.bases,
        inherited=tree.inherited,
    )


# -- from file to YAML nodes ----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader used to compose only: nodes keep their marks, no tag is constructed."""


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            # Bounded, so a wrong path (a device, a huge log) fails at once instead of
            # filling memory.
            data = file.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProfileError(path, None, None, f"cannot read the file: {reason}") from None
    if len(data) > MAX_PROFILE_BYTES:
        problem = f"larger than {MAX_PROFILE_BYTES // 1024} KiB; is this an issuer profile?"
        raise ProfileError(path, None, None, problem)
    return data


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
        loader.name = os.fspath(path)  # every mark names its file: a merged tree has several
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


# A run of hex long enough to be key material, as in "mac 4041..." with its colon missing.
_KEYLIKE = re.compile(r"[0-9A-Fa-f]{16,}")


def _shown(name: str) -> str:
    """A field name as an error may print it: anything that could be a key is masked."""
    masked = _KEYLIKE.sub("<hex>", name)
    return masked if len(masked) <= 40 else masked[:37] + "..."


class _Reader:
    """Reads typed values out of one profile's nodes, naming the file in every error."""

    def __init__(self, path: Path, files: dict[str, Path] | None = None) -> None:
        self.path = path
        self.files = files or {}  # mark name -> file, for the nodes a base contributed

    def error(self, node: yaml.Node, field: str, problem: str) -> ProfileError:
        return ProfileError(self.file_of(node), _line(node), field or None, problem)

    def file_of(self, node: yaml.Node) -> Path:
        """The file ``node`` was written in."""
        name = node.start_mark.name if node.start_mark else None
        return self.files.get(name, self.path) if name else self.path

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
            sub = f"{field}.{_shown(name)}" if field else _shown(name)
            raise self.error(node, sub, f"duplicate key, first on line {first}; keep one")
        return name

    def reject_unknown(self, mapping: _Map, allowed: tuple[str, ...]) -> None:
        for name, key_node in mapping.key_nodes.items():
            if name in allowed:
                continue
            close = difflib.get_close_matches(name, allowed, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            shown = _shown(name)
            problem = f"unknown field {shown}; {guess}expected one of {', '.join(allowed)}"
            raise self.error(key_node, mapping.sub(shown), problem)

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

        if len(node.value.lstrip("+-0")) > 12:
            raise self.error(node, field, "far too large a number; expected a small integer")
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

    policy = _policy(reader, top.values.get("policy"), url)
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

    # The client side's own rule, so a profile never burns a URL verification refuses.
    problem = url_problem(url)
    if problem is not None:
        raise reader.error(node, field, f"{problem}; {expected}")
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
    protocol_node = reader.require(section, "protocol", "SCP01, SCP02 or SCP03")
    protocol = Scp[reader.choice(protocol_node, section.sub("protocol"), PROTOCOLS)]
    i = _implementation_option(reader, section, protocol)
    level = _security_level(reader, section, protocol, i)

    key_version = 0
    if (kvn_node := section.values.get("key_version")) is not None:
        key_version = reader.integer(kvn_node, section.sub("key_version"), 0, KVN_MAX)

    aid = _card_manager_aid(reader, section)
    return ChannelSpec(protocol, i, SECURITY_LEVELS[level], key_version, aid)


def _security_level(reader: _Reader, section: _Map, protocol: Scp, i: int) -> str:
    node = section.values.get("security_level")
    if node is None:
        return DEFAULT_SECURITY_LEVEL

    field = section.sub("security_level")
    level = reader.choice(node, field, tuple(SECURITY_LEVELS))
    offered = supported_levels(protocol, i)
    if SECURITY_LEVELS[level] not in offered:
        # Amd D §5.1: R-MAC needs i bit 20, R-ENC also bit 40; SCP01 and SCP02 have neither.
        choices = " or ".join(name for name, value in SECURITY_LEVELS.items() if value in offered)
        problem = f"{level} is not a level of {protocol.name} i={i:02X}; expected {choices}"
        raise reader.error(node, field, problem)
    return level


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


def _key_sets(reader: _Reader, node: yaml.Node, channel: ChannelSpec) -> tuple[KeySetSpec, ...]:
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ or not node.value:
        kind = "an empty list" if isinstance(node, yaml.SequenceNode) else _kind(node)
        raise reader.error(node, "key_sets", f"{kind}; expected a list of at least one key set")

    key_sets: list[KeySetSpec] = []
    for index, item in enumerate(node.value):
        section = reader.mapping(item, f"key_sets[{index}]", _KEY_SET_FIELDS)
        key_set = _key_set(reader, section, channel.protocol)

        first = next((n for n, other in enumerate(key_sets) if other.kvn == key_set.kvn), None)
        if first is not None:
            problem = f"{key_set.kvn} is also the kvn of key_sets[{first}]; expected each once"
            raise reader.error(section.values["kvn"], section.sub("kvn"), problem)
        key_sets.append(key_set)
    return tuple(key_sets)


def _key_set(reader: _Reader, section: _Map, protocol: Scp) -> KeySetSpec:
    kvn_node = reader.require(section, "kvn", f"a key version number, {KVN_MIN} to {KVN_MAX}")
    # XXX: kvn FF, the initial key set some factory cards report, is outside 1..127.
    kvn = reader.integer(kvn_node, section.sub("kvn"), KVN_MIN, KVN_MAX)
    method = _diversification(reader, section, protocol)

    test_node = section.values.get("test_keys")
    test_keys = test_node is not None and reader.boolean(test_node, section.sub("test_keys"))
    where = _where(reader, section.node, section.field)
    spec = KeySetSpec(kvn, protocol, method, test_keys, where)
    if test_keys:
        return _inline_keys(reader, section, spec)
    return _key_source(reader, section, spec)


def _where(reader: _Reader, node: yaml.Node, field: str) -> str:
    """How a key-source message names the place, as ProfileError does: path:line: field."""
    return f"{reader.file_of(node)}:{_line(node)}: {field}"


def _diversification(reader: _Reader, section: _Map, protocol: Scp) -> Diversification:
    node = section.values.get("diversification")
    if node is None:
        return Diversification.NONE

    field = section.sub("diversification")
    method = Diversification(reader.choice(node, field, tuple(m.value for m in Diversification)))
    if method.aes is not None and method.aes != (protocol is Scp.SCP03):
        kind, fits = ("AES", "SCP03") if method.aes else ("3DES", "SCP01 and SCP02")
        problem = f"{method} makes {kind} keys, for {fits}; {protocol.name} cannot use them"
        raise reader.error(node, field, problem)
    return method


def _inline_keys(reader: _Reader, section: _Map, spec: KeySetSpec) -> KeySetSpec:
    # A key set marked test_keys: true holds its keys inline, and nothing else.
    if (source_node := section.values.get("source")) is not None:
        problem = "a test_keys: true set holds inline test keys; a key source holds real keys"
        raise reader.error(source_node, section.sub("source"), problem)

    if spec.diversification is Diversification.NONE:
        _refuse(reader, section, ("master",), "without diversification the keys are enc, mac, dek")
        enc, mac, dek = (_key(reader, section, role, spec.protocol) for role in _KEY_ROLES)
        if not len(enc.value) == len(mac.value) == len(dek.value):
            # Amd D §4.1: the three static keys of a set share one AES key length.
            node = section.values["mac"]
            problem = "enc, mac and dek have different lengths; expected one key length"
            raise reader.error(node, section.sub("mac"), problem)
        return replace(spec, static=StaticKeys(enc, mac, dek))

    _refuse(reader, section, _KEY_ROLES, f"a {spec.diversification} key set holds one master key")
    return replace(spec, master=_master_key(reader, section, spec.diversification))


def _key_source(reader: _Reader, section: _Map, spec: KeySetSpec) -> KeySetSpec:
    missing = f"real keys come from a key source: give one as source ({KEY_SOURCES})"
    role = next((role for role in (*_KEY_ROLES, "master") if role in section.values), None)
    if role is not None:
        problem = f"inline keys are only allowed with test_keys: true; {missing}"
        raise reader.error(section.values[role], section.sub(role), problem)

    node = reader.require(section, "source", f"a key source: {KEY_SOURCES}")
    field = section.sub("source")
    text = reader.string(node, field)
    try:
        source = parse_key_source(text, reader.file_of(node).parent)
    except ValueError as exc:
        raise reader.error(node, field, str(exc)) from None
    if isinstance(source, Pkcs11Source) and spec.diversification is Diversification.NONE:
        # The key stays in the token, so it can only be a master key diversified there.
        problem = "a pkcs11: key set needs a diversification method; its key is a master key"
        raise reader.error(node, field, problem)
    return replace(spec, source=source, where=_where(reader, node, field))


def _refuse(reader: _Reader, section: _Map, names: tuple[str, ...], why: str) -> None:
    for name in names:
        if name in section.values:
            problem = f"not for this key set: {why}"
            raise reader.error(section.values[name], section.sub(name), problem)


def _master_key(reader: _Reader, section: _Map, method: Diversification) -> bytes:
    field = section.sub("master")
    node = reader.require(section, "master", "the master key in hex")
    value = reader.hex_bytes(node, field, secret=True)

    sizes = MASTER_KEY_SIZES[method]
    if len(value) not in sizes:
        expected = " or ".join(map(str, sizes))
        raise reader.error(node, field, f"{len(value)} bytes; expected {expected}")
    return value


def _key(reader: _Reader, section: _Map, role: str, protocol: Scp) -> Key:
    field = section.sub(role)
    node = reader.require(section, role, "the key in hex")
    value = reader.hex_bytes(node, field, secret=True)

    sizes = STATIC_KEY_SIZES[protocol]
    if len(value) not in sizes:
        expected = " or ".join(map(str, sizes))
        raise reader.error(node, field, f"{len(value)} bytes; expected {expected}")
    return Key(value, aes=protocol is Scp.SCP03)


def _check_key_version(
    reader: _Reader, section: _Map, channel: ChannelSpec, key_sets: tuple[KeySetSpec, ...]
) -> None:
    # A fixed key version that names none of the key sets could never open a channel.
    key_version = channel.key_version
    if key_version == 0 or any(key_set.kvn == key_version for key_set in key_sets):
        return

    kvns = ", ".join(str(key_set.kvn) for key_set in key_sets)
    problem = f"{key_version} names no key set; expected 0 or one of {kvns}"
    raise reader.error(section.values["key_version"], section.sub("key_version"), problem)


def _policy(reader: _Reader, node: yaml.Node | None, url: str) -> Policy:
    if node is None:
        return Policy(Overwrite.NEVER, DEFAULT_HALT_AFTER_KEY_MISMATCHES)
    section = reader.mapping(node, "policy", _POLICY_FIELDS)

    overwrite = Overwrite.NEVER
    if (overwrite_node := section.values.get("overwrite")) is not None:
        choices = tuple(member.value for member in Overwrite)
        overwrite = Overwrite(reader.choice(overwrite_node, section.sub("overwrite"), choices))
    replaces = _replaces(reader, section, url)
    if overwrite is Overwrite.REPLACE_LISTED and not replaces:
        problem = "replace-listed needs policy.replaces, the values it may overwrite"
        raise reader.error(section.values["overwrite"], section.sub("overwrite"), problem)

    halt = _policy_count(reader, section, "halt_after_key_mismatches")
    failures = _policy_count(reader, section, "halt_after_failures")
    ranges = _cuid_ranges(reader, section)
    dry_run = False
    if (dry_node := section.values.get("dry_run")) is not None:
        dry_run = reader.boolean(dry_node, section.sub("dry_run"))
    return Policy(overwrite, halt, replaces, failures, ranges, dry_run)


_POLICY_COUNT_DEFAULTS = {
    "halt_after_key_mismatches": DEFAULT_HALT_AFTER_KEY_MISMATCHES,
    "halt_after_failures": DEFAULT_HALT_AFTER_FAILURES,
}


def _policy_count(reader: _Reader, section: _Map, name: str) -> int:
    node = section.values.get(name)
    if node is None:
        return _POLICY_COUNT_DEFAULTS[name]
    return reader.integer(node, section.sub(name), 1)


def _policy_list(reader: _Reader, section: _Map, name: str) -> list[tuple[yaml.Node, str]]:
    """The items of a list of strings, each with its node and field name."""
    node = section.values.get(name)
    if node is None or _is_null(node):
        return []
    field = section.sub(name)
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ:
        raise reader.error(node, field, f"{_kind(node)}; expected a list of strings")
    return [(item, f"{field}[{n}]") for n, item in enumerate(node.value)]


def _replaces(reader: _Reader, section: _Map, url: str) -> tuple[str, ...]:
    # The values replace-listed may overwrite: issuer info as ESC reads it (the bytes up to
    # the first NUL), so printable ASCII of 1 to 223 bytes, whatever scheme it once had.
    values: list[str] = []
    for node, field in _policy_list(reader, section, "replaces"):
        value = reader.string(node, field)
        if not value or not value.isascii() or not value.isprintable():
            raise reader.error(node, field, "expected printable ASCII issuer info")
        if len(value) > URL_MAX_BYTES:
            raise reader.error(node, field, f"{len(value)} bytes; issuer info holds at most 223")
        if value == url:
            raise reader.error(node, field, "this is the profile's own phone_home_url")
        values.append(value)
    return tuple(values)


def _cuid_ranges(reader: _Reader, section: _Map) -> tuple[CuidRange, ...]:
    ranges: list[CuidRange] = []
    for node, field in _policy_list(reader, section, "cuid_ranges"):
        try:
            ranges.append(parse_cuid_range(reader.string(node, field)))
        except ValueError as exc:
            raise reader.error(node, field, str(exc)) from None
    return tuple(ranges)


# -- inheritance (extends) and the token type ---------------------------------------------

_TOKEN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Each file states its own format and name; extends is not passed down either.
_OWN_FIELDS = frozenset({"format", "name", "extends"})


@dataclass(frozen=True, slots=True)
class Inherited:
    """A top-level field a profile takes from a base, and where it is written."""

    field: str
    path: Path
    line: int | None


@dataclass(frozen=True, slots=True)
class _Tree:
    """A profile's top-level mapping merged with its bases'."""

    root: yaml.MappingNode
    data: tuple[bytes, ...]  # the files' bytes, the profile's first
    files: dict[str, Path]  # mark name -> file, for every file merged
    bases: tuple[Path, ...]
    inherited: tuple[Inherited, ...]

    def content_hash(self) -> str:
        """SHA-256 of the file, or with bases, of the files' SHA-256 digests in order."""
        if len(self.data) == 1:
            return "sha256:" + hashlib.sha256(self.data[0]).hexdigest()
        digests = b"".join(hashlib.sha256(data).digest() for data in self.data)
        return "sha256:" + hashlib.sha256(digests).hexdigest()


def _load_tree(path: Path, chain: tuple[Path, ...]) -> _Tree:
    """The file at ``path`` merged with what it extends; ``chain`` holds the files below it.

    A field the profile gives replaces the base's whole field; every other field but
    format, name and extends is taken from the base, which may extend another profile.
    """
    data = _read(path)
    text = _decode(path, data)
    _reject_tabs(path, text)
    root = _compose(path, text)
    reader = _Reader(path)
    if not isinstance(root, yaml.MappingNode):
        problem = f"the top level is {_kind(root)}; expected a mapping of the profile's fields"
        raise reader.error(root, "", problem)
    top = reader.mapping(root, "", None)
    _check_format(reader, top)

    files = {os.fspath(path): path}
    extends = top.values.get("extends")
    if extends is None:
        return _Tree(root, (data,), files, (), ())

    base_path = _base_path(reader, extends, path, chain)
    base = _load_tree(base_path, (*chain, path))
    merged, taken = _merged(root, base.root)
    inherited = tuple(
        Inherited(key.value, base.files.get(key.start_mark.name, base_path), _line(key))
        for key in taken
    )
    return _Tree(
        merged,
        (data, *base.data),
        {**base.files, **files},
        (base_path, *base.bases),
        inherited,
    )


def _base_path(reader: _Reader, node: yaml.Node, path: Path, chain: tuple[Path, ...]) -> Path:
    """The base file ``extends`` names, relative to the extending file's directory."""
    written = reader.string(node, "extends")
    if not written:
        raise reader.error(node, "extends", "empty; expected the path of a base profile")
    base = Path(os.path.normpath(path.parent / written))

    if not base.is_file():
        raise reader.error(node, "extends", f"{written!r}: there is no file {base}")
    seen = [*chain, path]
    if any(base.resolve() == other.resolve() for other in seen):
        loop = " -> ".join(str(p) for p in (*seen, base))
        raise reader.error(node, "extends", f"{written!r} makes a cycle: {loop}")
    return base


def _merged(
    child: yaml.MappingNode, base: yaml.MappingNode
) -> tuple[yaml.MappingNode, list[yaml.ScalarNode]]:
    """The child's fields, then the base's fields the child does not give."""
    given = {key.value for key, _ in child.value if isinstance(key, yaml.ScalarNode)}
    own = [(key, value) for key, value in child.value if key.value != "extends"]
    taken = [
        (key, value)
        for key, value in base.value
        if isinstance(key, yaml.ScalarNode) and key.value not in given | _OWN_FIELDS
    ]
    merged = yaml.MappingNode(
        child.tag, own + taken, child.start_mark, child.end_mark, flow_style=child.flow_style
    )
    return merged, [key for key, _ in taken]


def _token_type(reader: _Reader, top: _Map) -> str:
    """The TPS token type (op.format.<type>...), ``userKey`` unless the profile says."""
    node = top.values.get("token_type")
    if node is None:
        return DEFAULT_TOKEN_TYPE
    value = reader.string(node, "token_type")
    if not _TOKEN_TYPE.fullmatch(value):
        expected = "a TPS token type such as userKey: a letter, then letters, digits, _ or -"
        raise reader.error(node, "token_type", f"{value!r}; expected {expected}")
    return value
