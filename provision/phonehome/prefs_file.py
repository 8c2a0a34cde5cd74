"""Edit a Mozilla ``prefs.js``: set and remove ``user_pref`` statements, keep everything else.

Only the statements named are touched. Every other byte (comments, odd lines, statements of
other prefs, line ends, a byte-order mark) stays as it was, and the file is replaced
atomically: a reader sees the old file or the new one, never half of one.

Strings are written in ASCII. A quote, a backslash, a line break or another control character
and every non-ASCII character are escaped, so that no value can end its string early or add a
statement of its own (Mozilla's prefs parser reads ``\\"``, ``\\\\``, ``\\n``, ``\\r``,
``\\xHH`` and ``\\uHHHH``, a pair of them for a character beyond U+FFFF).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PrefsError
from .esc_prefs import BOM, PathLike, PrefStatement, decode, parse_prefs, prefs_of

logger = logging.getLogger(__name__)

USER_PREF = "user_pref"
NEW_FILE_HEADER = "// ESC user preferences\n"
_SIMPLE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r"}


def pref_string(value: str) -> str:
    """``value`` as a double-quoted prefs string in ASCII.

    Raises ValueError for a NUL (Mozilla refuses the escape) or half a surrogate pair.
    """
    out = ['"']
    for char in value:
        code = ord(char)
        if char in _SIMPLE:
            out.append(_SIMPLE[char])
        elif code == 0:
            raise ValueError("a prefs string cannot hold a NUL character")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"a prefs string cannot hold the lone surrogate U+{code:04X}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x7F:
            out.append(char)
        else:
            units = char.encode("utf-16-be")
            out.extend(f"\\u{units[i : i + 2].hex()}" for i in range(0, len(units), 2))
    out.append('"')
    return "".join(out)


def render_pref(name: str, value: str, *, function: str = USER_PREF) -> str:
    """One statement, ``function("name", "value");``, without a line end."""
    return f"{function}({pref_string(name)}, {pref_string(value)});"


@dataclass
class PrefsChange:
    """What an update did, by pref name."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class PrefsFile:
    """A prefs file held in memory: its text, and the statements found in it."""

    def __init__(self, path: PathLike, text: str = "", *, bom: bool = False) -> None:
        self.path = Path(path)
        self._text = text
        self._bom = bom
        self._statements = parse_prefs(text, os.fspath(path))

    @classmethod
    def load(cls, path: PathLike) -> PrefsFile:
        """The file at ``path``; a file that does not exist yet is an empty one."""
        shown = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return cls(path, "")
        except OSError as e:
            raise PrefsError(shown, f"cannot read {shown}: {e.strerror or e}") from e
        bom, text = decode(data, shown)
        return cls(path, text, bom=bom)

    @property
    def text(self) -> str:
        return self._text

    @property
    def prefs(self) -> dict[str, str]:
        """Every pref the file sets, the last setting winning."""
        return prefs_of(self._statements)

    def update(self, entries: Mapping[str, str], remove: Iterable[str] = ()) -> PrefsChange:
        """Set ``entries`` and drop the statements of the names in ``remove``.

        A pref the file already sets is rewritten in place (its last statement; earlier ones
        are left, as they are overridden); a new one is appended at the end. Raises
        ValueError for a name or value no prefs string can hold, before anything changes.
        """
        rendered = {name: render_pref(name, value) for name, value in entries.items()}
        change = PrefsChange()
        edits: list[tuple[int, int, str]] = []
        last = _last_statements(self._statements)

        for name, line in rendered.items():
            found = last.get(name)
            if found is None:
                change.added.append(name)
            elif found.function == USER_PREF and found.value == entries[name]:
                change.unchanged.append(name)
            else:
                change.changed.append(name)
                edits.append((found.start, found.end, line))

        gone = [n for n in dict.fromkeys(remove) if n not in rendered]
        for statement in self._statements:
            if statement.name in gone:
                edits.append((*self._line_span(statement), ""))
        change.removed = [n for n in gone if n in last]

        text = _apply(self._text, edits)
        added = [rendered[name] for name in change.added]
        self._replace(_appended(text, added, self._text))
        return change

    def save(self) -> None:
        """Write the file atomically, keeping the old file's permissions."""
        write_atomically(self.path, (BOM if self._bom else "") + self._text)

    def _replace(self, text: str) -> None:
        self._text = text
        self._statements = parse_prefs(text, os.fspath(self.path))

    def _line_span(self, statement: PrefStatement) -> tuple[int, int]:
        """The statement's span, widened to its whole line when nothing else is on it."""
        text = self._text
        line_start = text.rfind("\n", 0, statement.start) + 1
        line_end = text.find("\n", statement.end)
        line_end = len(text) if line_end < 0 else line_end + 1
        before = text[line_start : statement.start]
        after = text[statement.end : line_end]
        if before.strip() == "" and after.strip() == "":
            return line_start, line_end
        return statement.start, statement.end


def _last_statements(statements: list[PrefStatement]) -> dict[str, PrefStatement]:
    last: dict[str, PrefStatement] = {}
    for statement in statements:
        if statement.name is not None:
            last[statement.name] = statement
    return last


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    # From the end backwards, so that earlier offsets stay valid.
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _appended(text: str, lines: list[str], original: str) -> str:
    if not lines:
        return text
    newline = "\r\n" if "\r\n" in original else "\n"
    if not text:
        text = NEW_FILE_HEADER.replace("\n", newline)
    elif not text.endswith("\n"):
        text += newline
    return text + "".join(line + newline for line in lines)


def write_atomically(path: PathLike, text: str, *, new_mode: int = 0o600) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8) through a sibling temporary file.

    A symbolic link is followed, so that the file it points at is the one replaced. The
    old file's permission bits are kept; a new file gets ``new_mode``, by default 0600 as
    prefs are per user.
    """
    target = Path(os.path.realpath(path))
    shown = os.fspath(path)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = new_mode
    except OSError as e:
        raise PrefsError(shown, f"cannot write {shown}: {e.strerror or e}") from e

    try:
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as e:
        raise PrefsError(shown, f"cannot write {shown}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except OSError as e:
        Path(tmp_name).unlink(missing_ok=True)
        raise PrefsError(shown, f"cannot write {shown}: {e.strerror or e}") from e
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.debug("wrote %s", shown)
