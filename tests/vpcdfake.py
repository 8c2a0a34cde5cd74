"""The driver end of vpcd's socket protocol, for bridge tests that run without pcscd.

Written from the protocol description (globalplatform.md §3.3: 2-byte big-endian length and
payload; control codes 00 power off, 01 power on, 02 reset, 04 get ATR), not from the
bridge: it listens as vpcd does, accepts the card's connection, and sends what pcscd would.
"""

from __future__ import annotations

import socket

from simulator.readerconf import VirtualReader

POWER_OFF, POWER_ON, RESET, GET_ATR = b"\x00", b"\x01", b"\x02", b"\x04"


class FakeVpcd:
    """One listening slot on 127.0.0.1, at ``port`` or a free one."""

    def __init__(self, index: int = 0, name: str = "Fake vpcd 00 00", port: int = 0) -> None:
        self._server = socket.create_server(("127.0.0.1", port))
        self.reader = VirtualReader(index, name, self._server.getsockname()[1])
        self._client: socket.socket | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._server.close()

    def accept(self, timeout: float = 5.0) -> None:
        """Wait for the card (the bridge's connection)."""
        self._server.settimeout(timeout)
        client, _ = self._server.accept()
        client.settimeout(timeout)
        self._client = client

    def send(self, payload: bytes) -> None:
        assert self._client is not None
        self._client.sendall(len(payload).to_bytes(2, "big") + payload)

    def receive(self) -> bytes | None:
        """One frame from the card, or None when the card has closed its end."""
        header = self._read(2)
        if header is None:
            return None
        return self._read(int.from_bytes(header, "big"))

    def exchange(self, payload: bytes) -> bytes | None:
        self.send(payload)
        return self.receive()

    def control(self, code: bytes) -> None:
        """Power off, power on or reset: vpcd expects no answer to these."""
        self.send(code)

    def hang_up(self) -> None:
        """Close the slot's connection, as vpcd does once it has seen the card go."""
        assert self._client is not None
        self._client.close()
        self._client = None

    def _read(self, size: int) -> bytes | None:
        assert self._client is not None
        data = b""
        while len(data) < size:
            chunk = self._client.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data
