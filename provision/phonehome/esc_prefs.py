"""Read Mozilla prefs files: ESC's defaults ``esc-prefs.js`` and a profile's ``prefs.js``.

The files hold statements ``pref("name", "value");`` (``user_pref`` in a profile) with comments
after ``#`` or ``//`` and between ``/*`` and ``*/`` (esc-phone-home.md §2.5). A statement that
does not have that shape is skipped with a warning, line by line, so one odd line does not hide
the rest. A string with an escape this reader does not know is skipped the same way rather than
read wrongly. :func:`parse_prefs` also gives where each statement lies in the text, so that
``prefs_file`` can rewrite one statement and keep every other byte."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import PrefsError

logger = logging.getLogger(__name__)

GLOBAL_PHONE_HOME_URL = "esc.global.phone.home.url"
IGNORE_KEY_ISSUER_INFO = "esc.ignore.key.issuer.info"

_FUNCTIONS = frozenset({"pref", "user_pref", "lockPref", "sticky_pref"})
_TOKENS = re.compile(
    r"""
    (?P<newline>\n)
    | (?P<space>[ \t\r\f\v]+)
    | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>"(?:[^"\\\n]|\\[^\n])*"|'(?:[^'\\\n]|\\[^\n])*')
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+)
    | (?P<punct>[(),;])
    """,
    re.VERBOSE | re.DOTALL,
)
_INTEGER = re.compile(r"-?[0-9]+")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t"}
# The tokens of one statement: function ( name , value ) ;
_SHAPE = ("word", "(", "string", ",", "value", ")", ";")

PathLike = str | os.PathLike[str]


BOM = "\ufeff"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class PrefStatement:
    """One statement of the right shape, and where it lies: ``text[start:end]``.

    ``name`` and ``value`` are None when a string holds an escape this reader refuses.
    """

    function: str
    name: str | None
    value: str | None
    line: int
    start: int
    end: int


class _BadString(ValueError):
    pass


def read_prefs(path: PathLike) -> dict[str, str]:
    """Every pref the file sets; the last setting of a name wins, as in Mozilla.

    Strings are unescaped; booleans and integers are given as written.
    """
    _, text = read_text(path)
    return prefs_of(parse_prefs(text, os.fspath(path)))


def prefs_of(statements: list[PrefStatement]) -> dict[str, str]:
    """The prefs the statements set, the last setting of a name winning."""
    prefs: dict[str, str] = {}
    for statement in statements:
        if statement.name is not None and statement.value is not None:
            prefs[statement.name] = statement.value
    return prefs


def parse_prefs(text: str, source: str) -> list[PrefStatement]:
    """The statements of ``text``, in order; ``source`` names the file in warnings."""
    found = []
    for tokens in _statements(text, source):
        name: str | None
        value: str | None
        try:
            name, value = _unescape(tokens[2].text), _value(tokens[4])
        except _BadString as e:
            logger.warning("%s:%d: skipped, %s", source, tokens[0].line, e)
            name = value = None
        found.append(
            PrefStatement(
                tokens[0].text, name, value, tokens[0].line, tokens[0].start, tokens[-1].end
            )
        )
    return found


def read_pref(path: PathLike, name: str) -> str | None:
    """The value the file gives ``name``, or None when it sets no such pref."""
    return read_prefs(path).get(name)


def read_global_phone_home_url(path: PathLike) -> str | None:
    """``esc.global.phone.home.url`` from the file, or None when unset or empty."""
    return read_pref(path, GLOBAL_PHONE_HOME_URL) or None


def read_text(path: PathLike) -> tuple[bool, str]:
    """Whether the file starts with a byte-order mark, and its text after it, line ends kept."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PrefsError(shown, f"cannot read {shown}: {e.strerror or e}") from e
    return decode(data, shown)


def decode(data: bytes, shown: str) -> tuple[bool, str]:
    """The text of a prefs file's bytes (UTF-8, a byte-order mark allowed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        where = f"line {line}, byte {column} of the line"
        raise PrefsError(shown, f"cannot read {shown}: not UTF-8 ({where})") from e
    if text.startswith(BOM):
        return True, text[len(BOM) :]
    return False, text


def _statements(text: str, shown: str) -> Iterator[list[_Token]]:
    """Statements of the right shape; an odd one is skipped up to the end of its line."""
    statement: list[_Token] = []
    skipping = False
    for token in _tokens(text):
        if token.kind == "newline":
            skipping = False
            continue
        if skipping:
            continue

        statement.append(token)
        if not _fits(statement):
            logger.warning("%s:%d: skipped, not a pref statement", shown, statement[0].line)
            # A statement cut short (no ";") must not take the next one with it.
            statement = [token] if _fits([token]) else []
            skipping = not statement
        elif len(statement) == len(_SHAPE):
            yield statement
            statement = []

    if statement:
        logger.warning("%s:%d: skipped, cut short by the end", shown, statement[0].line)


def _fits(statement: list[_Token]) -> bool:
    token = statement[-1]
    expected = _SHAPE[len(statement) - 1]
    if expected == "word":
        return token.kind == "word" and token.text in _FUNCTIONS
    if expected == "value":
        return token.kind in ("string", "word") and _is_literal(token)
    if expected == "string":
        return token.kind == "string"
    return token.kind == "punct" and token.text == expected


def _is_literal(token: _Token) -> bool:
    if token.kind == "string" or token.text in ("true", "false"):
        return True
    return _INTEGER.fullmatch(token.text) is not None


def _tokens(text: str) -> Iterator[_Token]:
    """Tokens without spaces and comments; a character no token starts with is ``bad``."""
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKENS.match(text, pos)
        if match is None:
            yield _Token("bad", text[pos], line, pos, pos + 1)
            pos += 1
            continue

        kind = match.lastgroup or ""
        if kind in ("string", "word", "punct", "newline"):
            yield _Token(kind, match.group(), line, match.start(), match.end())
        line += match.group().count("\n")
        pos = match.end()


def _value(token: _Token) -> str:
    return _unescape(token.text) if token.kind == "string" else token.text


def _unescape(quoted: str) -> str:
    """The text between the quotes, its escapes decoded; an unknown escape is refused."""
    body, out, pos = quoted[1:-1], [], 0
    while pos < len(body):
        char = body[pos]
        if char != "\\":
            out.append(char)
            pos += 1
            continue

        decoded, pos = _escape(body, pos + 1)
        out.append(decoded)
    return _joined(out)


def _escape(body: str, pos: int) -> tuple[str, int]:
    """The character of the escape whose letter is at ``pos``, and where the next one starts."""
    letter = body[pos]
    if letter in _ESCAPES:
        return _ESCAPES[letter], pos + 1
    if letter in "xu":
        size = 2 if letter == "x" else 4
        digits = body[pos + 1 : pos + 1 + size]
        if len(digits) == size and all(c in "0123456789abcdefABCDEF" for c in digits):
            return chr(int(digits, 16)), pos + 1 + size
    raise _BadString(f"unknown or malformed escape \\{body[pos : pos + 5]}")


def _joined(chars: list[str]) -> str:
    """Join, pairing UTF-16 surrogates written as two ``\\u`` escapes."""
    try:
        return "".join(chars).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as e:
        raise _BadString("a \\u escape is half of a surrogate pair") from e
