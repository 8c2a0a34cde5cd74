"""A transport that plays a fixed dialogue and checks every byte the host sends."""

from __future__ import annotations

from provision.iso7816 import split_response


class ScriptedTransport:
    """Expects the commands of ``script`` in order, answering each with its response."""

    def __init__(self, script: list[tuple[bytes, bytes]], reader: str = "scripted") -> None:
        self._script = list(script)
        self.sent: list[bytes] = []
        self._reader = reader

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return b""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        assert self._script, f"unexpected command {apdu.hex().upper()}"
        expected, response = self._script.pop(0)
        assert apdu.hex().upper() == expected.hex().upper()
        return split_response(response)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return not self._script
