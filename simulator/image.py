"""Card images: a token's persistent state as JSON, so a token outlives the process.

An image holds everything that survives a power cycle, the model and the keys included (they
are simulator test keys). Byte strings are upper-case hex. Reading an image checks every
field and names the bad one in the ValueError.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from provision.gp.keys import Scp, StaticKeys

from .card import DEFAULT_MODEL, CardModel, VirtualToken
from .card_manager import CPLC_LENGTH, KDD_LENGTH
from .coolkey import ISSUER_INFO_SIZE, valid_life_cycle

IMAGE_FORMAT = "coolkey-token-image/1"

T = TypeVar("T")


def to_image(token: VirtualToken) -> dict[str, Any]:
    """The token's persistent state as a JSON-able dict."""
    counters = token.sequence_counters
    return {
        "format": IMAGE_FORMAT,
        "model": _model_to_image(token.model),
        "cuid": token.cuid.hex().upper(),
        "cplc": token.cplc.hex().upper(),
        "kdd": token.kdd.hex().upper(),
        "key_sets": [
            {
                "kvn": f"{kvn:02X}",
                "enc": keys.enc.value.hex().upper(),
                "mac": keys.mac.value.hex().upper(),
                "dek": keys.dek.value.hex().upper(),
                "sequence_counter": counters[kvn],
            }
            for kvn, keys in token.key_sets.items()
        ],
        "issuer_info": token.issuer_info.hex().upper(),
        "life_cycle": f"{token.life_cycle:02X}",
        "failed_auth_count": token.failed_auth_count,
        "locked": token.locked,
    }


def _model_to_image(model: CardModel) -> dict[str, Any]:
    return {
        "protocol": model.protocol.name.lower(),
        "i": f"{model.i:02X}",
        "applet_levels": [f"{p1:02X}" for p1 in sorted(model.applet_levels)],
        "auth_failure_limit": model.auth_failure_limit,
        "atr": model.atr.hex().upper(),
        "card_manager_aid": model.card_manager_aid.hex().upper(),
        "auth_failure_sw": f"{model.auth_failure_sw:04X}",
        "locked_sw": f"{model.locked_sw:04X}",
    }


def from_image(image: Any) -> VirtualToken:
    """A token from :func:`to_image` output; ValueError names the first bad field."""
    fields = _Fields(image, "image")
    if fields.get("format", str) != IMAGE_FORMAT:
        raise ValueError(f"image field 'format': not {IMAGE_FORMAT!r}")

    model = _model_from_image(fields.nested("model"))
    key_sets, counters = _key_sets_from_image(fields, model.protocol)
    cplc = fields.hex("cplc", CPLC_LENGTH)
    kdd = fields.hex("kdd", KDD_LENGTH)
    issuer_info = fields.hex("issuer_info", ISSUER_INFO_SIZE)
    life_cycle = fields.byte("life_cycle")
    if not valid_life_cycle(life_cycle):
        raise ValueError(f"image field 'life_cycle': {life_cycle:02X} is not a selectable state")
    failed_auth_count = fields.get("failed_auth_count", int)
    locked = fields.get("locked", bool)

    with _field_errors("image"):
        token = VirtualToken(
            model=model,
            cplc=cplc,
            kdd=kdd,
            key_sets=key_sets,
            sequence_counters=counters,
            issuer_info=issuer_info,
            life_cycle=life_cycle,
            failed_auth_count=failed_auth_count,
            locked=locked,
        )
    if "cuid" in image and fields.hex("cuid") != token.cuid:
        raise ValueError("image field 'cuid': does not match the CUID in 'cplc'")
    return token


def _model_from_image(fields: _Fields) -> CardModel:
    protocol_name = fields.get("protocol", str)
    try:
        protocol = Scp[protocol_name.upper()]
    except KeyError:
        raise ValueError(f"image field 'model.protocol': unknown {protocol_name!r}") from None

    i = fields.byte("i")
    levels = frozenset(fields.byte_list("applet_levels"))
    limit = fields.get("auth_failure_limit", int)
    atr = fields.hex("atr")
    aid = fields.hex("card_manager_aid")
    # Images written before these fields existed take the defaults.
    failure_sw = fields.status_word("auth_failure_sw", DEFAULT_MODEL.auth_failure_sw)
    locked_sw = fields.status_word("locked_sw", DEFAULT_MODEL.locked_sw)
    with _field_errors("model"):
        return CardModel(protocol, i, levels, limit, atr, aid, failure_sw, locked_sw)


def _key_sets_from_image(
    fields: _Fields, protocol: Scp
) -> tuple[dict[int, StaticKeys], dict[int, int]]:
    key_sets: dict[int, StaticKeys] = {}
    counters: dict[int, int] = {}
    entries = fields.get("key_sets", list)
    if not entries:
        raise ValueError("image field 'key_sets': the card needs at least one key set")
    for n, entry in enumerate(entries):
        key_fields = _Fields(entry, f"key_sets[{n}]")
        kvn = key_fields.byte("kvn")
        if kvn in key_sets:
            raise ValueError(f"image field 'key_sets[{n}].kvn': {kvn:02X} appears twice")
        enc, mac, dek = (key_fields.hex(name) for name in ("enc", "mac", "dek"))
        with _field_errors(f"key_sets[{n}]"):
            key_sets[kvn] = StaticKeys.from_bytes(enc, mac, dek, aes=protocol == Scp.SCP03)
        counters[kvn] = key_fields.get("sequence_counter", int)
    return key_sets, counters


class _Fields:
    """Typed access to one JSON object of an image, with errors that name the field."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ValueError(f"image field '{path}': expected an object")
        self._value: dict[str, Any] = value
        self._path = path

    def _name(self, key: str) -> str:
        return key if self._path == "image" else f"{self._path}.{key}"

    def get(self, key: str, kind: type[T]) -> T:
        if key not in self._value:
            raise ValueError(f"image field '{self._name(key)}': missing")
        value = self._value[key]
        # bool is an int in Python; an image that says true for a count is still wrong.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"image field '{self._name(key)}': expected {kind.__name__}")
        return value

    def nested(self, key: str) -> _Fields:
        return _Fields(self.get(key, dict), self._name(key))

    def hex(self, key: str, length: int | None = None) -> bytes:
        text = self.get(key, str)
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"image field '{self._name(key)}': not hex") from None
        if length is not None and len(value) != length:
            raise ValueError(f"image field '{self._name(key)}': expected {length} bytes")
        return value

    def byte(self, key: str) -> int:
        value = self.hex(key)
        if len(value) != 1:
            raise ValueError(f"image field '{self._name(key)}': expected one hex byte")
        return value[0]

    def status_word(self, key: str, default: int) -> int:
        """Two hex bytes, or ``default`` when the field is absent."""
        if key not in self._value:
            return default
        value = self.hex(key)
        if len(value) != 2:
            raise ValueError(f"image field '{self._name(key)}': expected a status word")
        return int.from_bytes(value, "big")

    def byte_list(self, key: str) -> list[int]:
        items = self.get(key, list)
        if not all(isinstance(item, str) and len(item) == 2 for item in items):
            raise ValueError(f"image field '{self._name(key)}': expected hex bytes")
        try:
            return [int(item, 16) for item in items]
        except ValueError:
            raise ValueError(f"image field '{self._name(key)}': not hex") from None


@contextmanager
def _field_errors(path: str) -> Iterator[None]:
    """A constructor's ValueError, with the image field it came from in front."""
    try:
        yield
    except ValueError as e:
        where = "image" if path == "image" else f"image field '{path}'"
        raise ValueError(f"{where}: {e}") from None


def save(token: VirtualToken, path: str | os.PathLike[str]) -> None:
    """Write the token's image to ``path``, replacing any old file atomically."""
    target = Path(path)
    text = json.dumps(to_image(token), indent=2) + "\n"

    # Write a sibling temporary file, flush it to disk, then rename it over the target:
    # a reader sees the old image or the new one, never half of one.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike[str]) -> VirtualToken:
    """Read a token image; ValueError for a file that is not a valid image."""
    with Path(path).open(encoding="utf-8") as f:
        try:
            image = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a text file") from None
    try:
        return from_image(image)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
