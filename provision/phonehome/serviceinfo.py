"""Parse and render the ServiceInfo document a Phone Home URL serves.

Parsing follows ESC (esc-phone-home.md §2.4): the first ``IssuerName`` and the first
``Services`` in document order, the children of ``Services`` in order, empty elements skipped.
It is stricter than ESC where ESC would cache garbage: the URL elements must each hold exactly
one absolute http(s) URL, so a document with notes inside the element text (as in the RHCS
example) is refused with the element named instead of being cached as a broken URL."""

from __future__ import annotations

import functools
import re
import threading
import xml.etree.ElementTree as ET  # builds documents only; parsing goes through defusedxml
from collections import OrderedDict
from dataclasses import dataclass
from xml.parsers import expat

import defusedxml
import defusedxml.ElementTree

from ._text import quote, url_problem
from .errors import ServiceInfoError

URL_ELEMENTS = frozenset(
    {"Operation", "UI", "EnrolledTokenBrowserURL", "EnrolledTokenURL", "CAChainUI"}
)
_WORD = re.compile(r"[A-Za-z0-9_-]+")
_XML_SPACE = " \t\r\n"
# The characters XML 1.0 allows (production Char), so that a rendered document parses.
_XML_CHARS = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
# A Phone Home URL serves one document whatever the token (§3.3): a line parses the same
# bytes for every token, so the last few documents parsed are kept, by their bytes.
_PARSED_KEPT = 8


@dataclass(frozen=True)
class ServiceInfo:
    """The issuer name and the ``Services`` values, in document order, empty ones left out."""

    issuer_name: str
    services: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The value of the ``Services`` element ``name``, or None if it is absent."""
        return next((value for key, value in self.services if key == name), None)


class _Parsed:
    """The documents parsed last, by their bytes: a result does not depend on the source,
    which only errors name (and errors are not kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[bytes, ServiceInfo] = OrderedDict()

    def get(self, body: bytes) -> ServiceInfo | None:
        with self._lock:
            return self._kept.get(body)

    def keep(self, body: bytes, info: ServiceInfo) -> None:
        with self._lock:
            self._kept[body] = info
            if len(self._kept) > _PARSED_KEPT:
                self._kept.popitem(last=False)


_PARSED = _Parsed()


def parse_service_info(body: bytes, *, source: str) -> ServiceInfo:
    """Parse a ServiceInfo document fetched from ``source`` (named in every error).

    Any DTD is refused, and with it entity expansion and external references.
    The encoding comes from the byte-order mark or the XML declaration, UTF-8 by default.
    """
    info = _PARSED.get(body)
    if info is None:
        info = _parse_service_info(body, source)
        _PARSED.keep(body, info)
    return info


def _parse_service_info(body: bytes, source: str) -> ServiceInfo:
    root = _parse_xml(body, source)
    if root.tag != "ServiceInfo":
        raise ServiceInfoError(source, f"the root element is <{root.tag}>, not <ServiceInfo>")

    issuer = root.find(".//IssuerName")
    if issuer is None:
        raise ServiceInfoError(source, "there is no <IssuerName>", element="IssuerName")
    issuer_name = _text(issuer, source)
    if not issuer_name:
        raise ServiceInfoError(source, "<IssuerName> is empty", element="IssuerName")

    services = root.find(".//Services")
    if services is None:
        raise ServiceInfoError(source, "there is no <Services>", element="Services")
    return ServiceInfo(issuer_name, _services(services, source))


def _parse_xml(body: bytes, source: str) -> ET.Element:
    try:
        return defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except defusedxml.DTDForbidden as e:
        # Refusing every DTD also refuses entity expansion and external references.
        refused = (
            f"refused: it declares a document type (<!DOCTYPE {e.name}>), which is not allowed"
        )
        raise ServiceInfoError(source, refused) from e
    except defusedxml.DefusedXmlException as e:
        raise ServiceInfoError(source, f"refused: {e}") from e
    except (LookupError, ValueError) as e:
        # An encoding Python does not know, or one expat cannot read (multi-byte codecs).
        raise ServiceInfoError(source, f"cannot read its declared encoding: {e}") from e
    except ET.ParseError as e:
        line, column = e.position
        # expat counts columns from 0; editors count from 1.
        where = f"line {line}, column {column + 1}"
        raise ServiceInfoError(
            source, f"malformed XML at {where}: {expat.ErrorString(e.code)}"
        ) from e


def _services(services: ET.Element, source: str) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    found: dict[str, str] = {}
    for child in services:
        name = _name(child, source)
        if name in seen:
            raise ServiceInfoError(source, f"<{name}> appears twice in <Services>", element=name)
        seen.add(name)

        value = _text(child, source)
        if value:
            _check_value(name, value, source)
            found[name] = value
    return tuple(found.items())


def _name(element: ET.Element, source: str) -> str:
    if not _XML_NAME.fullmatch(element.tag):
        raise ServiceInfoError(source, f"<Services> holds an element named {quote(element.tag)}")
    return element.tag


def _text(element: ET.Element, source: str) -> str:
    if len(element):
        message = f"<{element.tag}> holds elements, where text was expected"
        raise ServiceInfoError(source, message, element=element.tag)
    return (element.text or "").strip(_XML_SPACE)


def _check_value(name: str, value: str, source: str) -> None:
    if name in URL_ELEMENTS and url_problem(value) is not None:
        message = f"<{name}> holds {quote(value)}, which is not one absolute URL"
        raise ServiceInfoError(source, message, element=name)
    if name == "TokenType" and not _WORD.fullmatch(value):
        message = f"<{name}> holds {quote(value)}, which is not a plain word"
        raise ServiceInfoError(source, message, element=name)


@functools.lru_cache(maxsize=_PARSED_KEPT)  # the same document for every token, as above
def esc_service_info(body: bytes) -> ServiceInfo | None:
    """What ESC 1.1's own parsing would take from ``body``, or None when it would fail.

    ESC.js ``phoneHome`` (esc-phone-home.md §2.4) does not insist on the root element, takes the
    last text of the first ``IssuerName`` and, for each child of the first ``Services``
    whose first node is non-empty text, that text as it stands: untrimmed and unchecked.
    A later element of the same name overwrites an earlier one. Bodies this module refuses
    for a DTD give None too: what ESC would make of them is not modelled.
    """
    # XXX: comments and processing instructions as a first child (ESC would cache their
    # text) and documents with a DTD are not modelled.
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except (defusedxml.DefusedXmlException, ET.ParseError, LookupError, ValueError):
        return None

    issuer = root if root.tag == "IssuerName" else root.find(".//IssuerName")
    services = root if root.tag == "Services" else root.find(".//Services")
    if issuer is None or services is None:
        return None
    issuer_name = (issuer[-1].tail if len(issuer) else issuer.text) or ""
    if not issuer_name:
        return None  # ESC throws on issuer.lastChild.data: the callback never completes

    found: dict[str, str] = {}
    for child in services:
        if isinstance(child.tag, str) and child.text:
            found[child.tag] = child.text
    return ServiceInfo(issuer_name, tuple(found.items()))


def render_service_info(info: ServiceInfo) -> bytes:
    """``info`` as a UTF-8 ServiceInfo document with an XML declaration.

    Values are written as given: parsing trims them again, and XML turns a CR into a line
    feed. Raises ValueError for an element name or a character XML cannot carry.
    """
    root = ET.Element("ServiceInfo")
    ET.SubElement(root, "IssuerName").text = _renderable("IssuerName", info.issuer_name)
    services = ET.SubElement(root, "Services")
    for name, value in info.services:
        if not _XML_NAME.fullmatch(name):
            raise ValueError(f"{quote(name)} cannot be an element name")
        ET.SubElement(services, name).text = _renderable(name, value)

    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _renderable(name: str, value: str) -> str:
    if not _XML_CHARS.fullmatch(value):
        raise ValueError(f"<{name}> value {quote(value)} holds characters XML cannot carry")
    return value
