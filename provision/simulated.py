"""A simulated run: blank virtual tokens and a local Phone Home server for one profile.

The tokens get the profile's own key set, so the run exercises the real secure channel. The
Phone Home server serves the profile's ServiceInfo; the tokens keep the profile's real URL
and only the connection for its host and port is sent to the local server, as a hosts-file
entry would.
"""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.card import CardModel, VirtualToken

from .errors import CardRemovedError
from .keysource import KeySetSpec
from .phonehome.server import PhoneHomeServer, route_path
from .phonehome.serviceinfo import render_service_info
from .profile import Profile
from .transport import InProcessTransport, Transport


@dataclass(frozen=True, slots=True)
class Redirect:
    """The connection override a simulated run installs for the Phone Home fetch."""

    host: str
    port: int
    local_host: str
    local_port: int
    ca_file: str | None = None

    @property
    def connect_to(self) -> dict[tuple[str, int], tuple[str, int]]:
        return {(self.host, self.port): (self.local_host, self.local_port)}


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default


@contextmanager
def phone_home_server(profile: Profile) -> Iterator[Redirect]:
    """Serve the profile's ServiceInfo on 127.0.0.1 at a free port while the block runs.

    For an https URL the server speaks TLS with a throw-away certificate for the URL's host,
    and the redirect names the file that holds it, for the client to trust.
    """
    body = render_service_info(profile.expected_service_info())
    path = route_path(profile.phone_home_url)
    host, port = url_host_port(profile.phone_home_url)
    with tempfile.TemporaryDirectory(prefix="phonehome-tls-") as directory:
        tls, ca_file = None, None
        if urlsplit(profile.phone_home_url).scheme == "https":
            tls, ca_file = _throwaway_tls(host, Path(directory))
        with PhoneHomeServer({path: body}, tls=tls) as server:
            yield Redirect(host, port, server.host, server.port, ca_file)


def _throwaway_tls(host: str, directory: Path) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for ``host``, valid for a day, and a server context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


def check_simulatable(profile: Profile) -> None:
    """Raise ConfigError now, before any run starts, if the profile's keys cannot be given
    to simulated tokens."""
    _card_key_set(profile).keys  # noqa: B018 - the property raises for sourced key sets


def blank_tokens(profile: Profile, count: int) -> Iterator[Transport]:
    """``count`` fresh blank tokens with random CUIDs, made one at a time."""
    spec = profile.channel
    key_set = _card_key_set(profile)
    keys = key_set.keys
    model = CardModel(protocol=spec.protocol, i=spec.i, card_manager_aid=spec.card_manager_aid)
    for n in range(count):
        token = VirtualToken.blank(model=model, key_sets={key_set.kvn: keys})
        yield InProcessTransport(token, reader=f"simulated-{n + 1:03d}")


def _card_key_set(profile: Profile) -> KeySetSpec:
    wanted = profile.channel.key_version
    if wanted:
        found = profile.key_set(wanted)
        if found is not None:
            return found
    return profile.key_sets[0]


class SimulatedReader:
    """An in-process reader slot: tests and simulated runs insert and remove tokens.

    A transport handed out by :meth:`wait_for_card` fails with :class:`CardRemovedError`
    once its token has been removed, as a real reader's connection does.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._token: VirtualToken | None = None
        self._changed = threading.Condition()

    @property
    def name(self) -> str:
        return self._name

    @property
    def token(self) -> VirtualToken | None:
        return self._token

    def insert(self, token: VirtualToken) -> None:
        with self._changed:
            self._token = token
            self._changed.notify_all()

    def remove(self) -> VirtualToken | None:
        with self._changed:
            token, self._token = self._token, None
            self._changed.notify_all()
            return token

    def wait_for_card(self, timeout: float) -> Transport | None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._token is not None, timeout):
                return None
            assert self._token is not None
            return _SlotTransport(self, self._token)

    def wait_for_removal(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._token is None, timeout)


class _SlotTransport(InProcessTransport):
    def __init__(self, reader: SimulatedReader, token: VirtualToken) -> None:
        super().__init__(token, reader.name)
        self._slot = reader
        self._token = token

    def _check_present(self) -> None:
        if self._slot.token is not self._token:
            raise CardRemovedError(f"the card was removed from {self._slot.name}")

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self._check_present()
        return super().transmit(apdu)

    def reset(self) -> None:
        self._check_present()
        super().reset()
