"""The control socket of ``token-sim serve``: insert, remove, swap and save cards while it runs.

A Unix socket in the reader configuration's directory takes one JSON request per line and
answers one JSON line: ``{"op": "insert", "reader": "3", "image": "/path/tok.json"}``, then
``{"ok": true, "message": "..."}`` or ``{"ok": false, "error": "..."}``. A card inserted from
an image file is written back to that file when it leaves (unless the request says not to),
so the token's state outlives the run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from .bridge import Bridge, BridgeError, ServeOptions
from .card import VirtualToken
from .image import load, save
from .latency import Latency
from .readerconf import ReaderConf

logger = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024


class ControlError(Exception):
    """A request that cannot be carried out; the message says why."""


def socket_path(conf: ReaderConf) -> Path:
    return conf.directory / SOCKET_NAME


class Controller:
    """What the control socket drives: a bridge, and the image each card came from."""

    def __init__(self, bridge: Bridge, defaults: ServeOptions) -> None:
        self.bridge = bridge
        self.defaults = defaults
        self._images: dict[int, Path | None] = {}
        self._lock = threading.Lock()

    def insert(
        self, reader: str, image: Path | None, token: VirtualToken, options: ServeOptions
    ) -> str:
        target = self.bridge.reader(reader)
        with self._lock:
            self.bridge.insert(target.index, token, options)
            self._images[target.index] = image
        return f"{target.name}: card {token.cuid.hex().upper()} in"

    def remove(self, reader: str, *, keep: bool = True) -> str:
        target = self.bridge.reader(reader)
        with self._lock:
            token = self.bridge.remove(target.index)
            image = self._images.pop(target.index, None)
        if token is None:
            return f"{target.name}: no card"
        if keep and image is not None:
            save(token, image)
            return f"{target.name}: card {token.cuid.hex().upper()} out, saved to {image}"
        return f"{target.name}: card {token.cuid.hex().upper()} out"

    def save(self, reader: str, image: Path) -> str:
        name = self.bridge.reader(reader).name
        token = self.bridge.save(reader, image)
        return f"{name}: card {token.cuid.hex().upper()} saved to {image}"

    def status(self) -> list[dict[str, Any]]:
        occupied = self.bridge.occupied()
        rows = []
        for reader in self.bridge.readers:
            token = occupied.get(reader.index)
            image = self._images.get(reader.index)
            rows.append(
                {
                    "index": reader.index,
                    "reader": reader.name,
                    "port": reader.port,
                    "cuid": token.cuid.hex().upper() if token else None,
                    "image": str(image) if image else None,
                }
            )
        return rows

    def close(self) -> None:
        """Take every card out, writing back those that came from an image."""
        for index in list(self.bridge.occupied()):
            self.remove(str(index))
        self.bridge.close()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "readers": self.status()}
        return {"ok": True, "message": self._card_op(op, str(request.get("reader", "")), request)}

    def _card_op(self, op: object, reader: str, request: dict[str, Any]) -> str:
        keep = bool(request.get("save", True))
        if op == "remove":
            return self.remove(reader, keep=keep)
        if op not in ("insert", "swap", "save"):
            raise ControlError(f"unknown request {op!r}")
        image = _image_path(request)
        if op == "save":
            return self.save(reader, image)

        token = _load(image)
        options = self._options(request)
        if op == "insert":
            return self.insert(reader, image, token, options)
        removed = self.remove(reader, keep=keep)
        return f"{removed}; {self.insert(reader, image, token, options)}"

    def _options(self, request: dict[str, Any]) -> ServeOptions:
        t0 = request.get("t0")
        apdu_ms, write_ms = request.get("apdu_delay_ms"), request.get("write_delay_ms")
        latency = self.defaults.latency
        if apdu_ms is not None or write_ms is not None:
            latency = Latency.from_ms(
                float(apdu_ms if apdu_ms is not None else latency.per_apdu * 1000),
                float(write_ms if write_ms is not None else latency.per_nv_write * 1000),
            )
        return ServeOptions(t0=self.defaults.t0 if t0 is None else bool(t0), latency=latency)


def _image_path(request: dict[str, Any]) -> Path:
    image = request.get("image")
    if not isinstance(image, str) or not image:
        raise ControlError("the request names no image file")
    return Path(image)


def _load(image: Path) -> VirtualToken:
    try:
        return load(image)
    except OSError as e:
        raise ControlError(f"{image}: {e.strerror or e}") from None


class _Handler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            answer = self.server.controller.handle(request)
        except (ControlError, BridgeError, ValueError, OSError) as e:
            answer = {"ok": False, "error": str(e)}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The control socket; ``serve_forever`` until shut down."""

    daemon_threads = True

    def __init__(self, path: Path, controller: Controller) -> None:
        self.controller = controller
        self.path = path
        path.unlink(missing_ok=True)
        super().__init__(str(path), _Handler)
        os.chmod(path, 0o600)

    def server_close(self) -> None:
        super().server_close()
        self.path.unlink(missing_ok=True)


def request(conf: ReaderConf, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running ``token-sim serve``; its answer."""
    path = socket_path(conf)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(
                f"no 'token-sim serve' runs for {conf.directory} (no control socket {path})"
            ) from None
        sock.sendall(json.dumps(payload).encode() + b"\n")
        with sock.makefile("rb") as answer:
            line = answer.readline(MAX_REQUEST)
    try:
        reply: dict[str, Any] = json.loads(line)
    except ValueError:
        raise ControlError("'token-sim serve' gave no answer") from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "request failed")))
    return reply
