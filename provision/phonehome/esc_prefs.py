"""Read ESC's defaults file, ``defaults/preferences/esc-prefs.js``.

The file holds statements ``pref("name", "value");`` with comments after ``#`` or ``//`` and
between ``/*`` and ``*/`` (reference §2.5). A statement that does not have that shape is
skipped with a warning, line by line, so one odd line does not hide the rest. A string with
an escape this reader does not know is skipped the same way rather than read wrongly.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import PrefsError

logger = logging.getLogger(__name__)

GLOBAL_PHONE_HOME_URL = "esc.global.phone.home.url"

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


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


class _BadString(ValueError):
    pass


def read_prefs(path: PathLike) -> dict[str, str]:
    """Every pref the file sets; the last setting of a name wins, as in Mozilla.

    Strings are unescaped; booleans and integers are given as written.
    """
    text = _read(path)
    prefs: dict[str, str] = {}
    for statement in _statements(text, os.fspath(path)):
        try:
            name, value = _unescape(statement[2].text), _value(statement[4])
        except _BadString as e:
            logger.warning("%s:%d: skipped, %s", os.fspath(path), statement[0].line, e)
            continue
        prefs[name] = value
    return prefs


def read_pref(path: PathLike, name: str) -> str | None:
    """The value the file gives ``name``, or None when it sets no such pref."""
    return read_prefs(path).get(name)


def read_global_phone_home_url(path: PathLike) -> str | None:
    """``esc.global.phone.home.url`` from the file, or None when unset or empty."""
    return read_pref(path, GLOBAL_PHONE_HOME_URL) or None


def _read(path: PathLike) -> str:
    shown = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise PrefsError(shown, f"cannot read {shown}: not UTF-8 (byte {e.start})") from e
    except OSError as e:
        raise PrefsError(shown, f"cannot read {shown}: {e.strerror or e}") from e


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
            yield _Token("bad", text[pos], line)
            pos += 1
            continue

        kind = match.lastgroup or ""
        if kind in ("string", "word", "punct", "newline"):
            yield _Token("punct" if kind == "punct" else kind, match.group(), line)
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
