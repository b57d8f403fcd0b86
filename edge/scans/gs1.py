"""What a parcel label's GS1 barcode carries: SSCC, GTIN, dates, batch and serial (with biip).

A GS1-128, GS1 DataMatrix or GS1 QR label holds GS1 element strings: an application identifier
(AI) and its data, one after another, variable-length ones ended by FNC1. Scanners pass them on
in one of these forms, all accepted here:

- with an AIM symbology identifier (ISO/IEC 15424) that says "GS1": ``]C1`` GS1-128, ``]d2`` GS1
  DataMatrix, ``]Q3`` GS1 QR, ``]e0`` GS1 DataBar (GS1 General Specifications, figure 5.1.2-2);
- with FNC1 as the ASCII group separator GS (0x1D), a leading one standing for the FNC1 in
  first position; scanners and decoders that cannot send a control character write ``<GS>``
  (zxing-cpp, several scanner configuration tools) or ``␝`` (U+241D) instead, and a site can
  name other one-character substitutes (``extra_separators``);
- as the human-readable interpretation ``(00)340123450000000017(17)250200``: what zxing-cpp,
  and so :class:`drivers.camera.CodeReader`, returns for a GS1 symbol;
- as a GS1 Digital Link URI (``https://id.gs1.org/00/...``) in a QR or DataMatrix;
- bare: digits only, starting with a complete SSCC element string with a valid check digit, the
  way a keyboard-wedge scanner without AIM identifiers sends an SSCC label. A bare string is
  GS1 only if all of it parses; anything else unmarked is a plain code (``None``), so a courier's
  own tracking number is never misread as AIs.

Two-digit years follow the GS1 General Specifications §7.12 century rule (within 49 years back
and 50 forward of this year; biip applies it with the wall clock), and a day of ``00`` means
the last day of that month (the date AIs in §3.4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from biip import ParseConfig, ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString

GS = "\x1d"
# Written for GS where a control character cannot be: zxing-cpp's escaped text, U+241D.
_GS_STAND_INS = ("<GS>", "\u241d")
# AIM symbology identifiers of symbols that carry GS1 element strings.
GS1_AIM_IDS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]e1", "]e2", "]J1"})
# AIM identifiers of symbologies that may carry a GS1 Digital Link URI as plain data.
_URI_AIM_IDS = frozenset({"]Q1", "]d1"})
_AIM_ID = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_HRI = re.compile(r"^\(\d{2,4}\)")
_HRI_ELEMENT = re.compile(r"\((\d{2,4})\)([^(]*)")
_BARE_SSCC = re.compile(r"^00\d{18}")
_FORMAT_PART = re.compile(r"^[NXY](\.\.)?(\d+)$")

# A courier's own tracking code: printable ASCII, and long enough not to be a stray key press.
TRACKING_CODE_LENGTH = (6, 40)
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")
_TRACKING_SYMBOLOGIES = frozenset({"code128", "code39"})
_AIM_SYMBOLOGY = {"]C": "code128", "]A": "code39", "]Q": "qr", "]d": "datamatrix", "]E": "ean"}


class ParcelCodeError(ValueError):
    """A scanned label that cannot give a parcel code: a malformed or truncated GS1 string, a
    GS1 label without an SSCC, or a barcode that is no courier tracking label."""


@dataclass(frozen=True)
class Gs1Data:
    """The element strings of one GS1 barcode; the well-known ones as typed fields."""

    sscc: str | None
    """AI (00): the 18-digit Serial Shipping Container Code of a logistic unit (a parcel)."""
    gtin: str | None
    """AI (01): the Global Trade Item Number, as GTIN-14."""
    expiry: date | None
    """AI (17): expiration date."""
    best_before: date | None
    """AI (15): best before date."""
    batch: str | None
    """AI (10): batch or lot number."""
    serial: str | None
    """AI (21): serial number."""
    elements: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Every element string, AI to data (the first of a repeated AI), in the order scanned."""
    hri: str = ""
    """Human-readable form: ``(00)340123450000000017(17)250200``."""

    @property
    def parcel_code(self) -> str | None:
        """What a locker files the parcel under: its SSCC, when the label has one."""
        return self.sscc


def parse_gs1(text: str, *, extra_separators: str = "") -> Gs1Data | None:
    """The GS1 element strings in ``text``; ``None`` when it is no GS1 element string.

    Raises :class:`ParcelCodeError` when ``text`` is marked as GS1 (see the module docstring)
    but is malformed: a truncated element, an unknown AI, a bad check digit, an invalid date.
    ``extra_separators``: further characters a site's scanners send for FNC1 (each one char).
    """
    config = ParseConfig(separator_chars=(GS, *extra_separators))
    text = text.strip(" \t\r\n")  # not str.strip(): GS counts as whitespace there
    for stand_in in _GS_STAND_INS:
        text = text.replace(stand_in, GS)
    aim = text[:3] if _AIM_ID.match(text) else None
    if aim is not None:
        body = text[3:]
        if aim in GS1_AIM_IDS:
            return _from_element_strings(body, config)
        if aim in _URI_AIM_IDS:
            return _from_digital_link(body)
        return None  # another symbology, or the same one without FNC1: not GS1
    if text.startswith(GS) or (GS in text and text[:2].isdigit()):
        return _from_element_strings(text, config)
    if _HRI.match(text):
        return _from_hri(text, config)
    if text.startswith(("https://", "http://")):
        return _from_digital_link(text)
    if _BARE_SSCC.match(text) and text.isdigit():
        try:
            return _from_element_strings(text, config)
        except ParcelCodeError:
            return None  # digits that merely look like an SSCC: a plain code
    return None


def parcel_code_of(text: str, symbology: str | None) -> str:
    """The tracking code of a scanned parcel label.

    The SSCC of a GS1 label; else the text of a courier's Code 128 or Code 39 label (printable
    ASCII, 6 to 40 characters). ``symbology`` is the scanner's name for it (``code128``,
    ``code39``, ``qr``...; ``None`` where the device does not say: then an AIM identifier at the
    start of ``text`` decides, or the text alone). :class:`ParcelCodeError` says why not.
    """
    gs1 = parse_gs1(text)
    if gs1 is not None:
        if gs1.parcel_code is None:
            raise ParcelCodeError(
                f"this GS1 label has no SSCC (AI 00), so it names no parcel: {gs1.hri}"
            )
        return gs1.parcel_code
    code = text.strip(" \t\r\n")
    if _AIM_ID.match(code):
        symbology = _AIM_SYMBOLOGY.get(code[:2], f"AIM {code[:3]}")
        code = code[3:]
    if symbology is not None and symbology not in _TRACKING_SYMBOLOGIES:
        raise ParcelCodeError(
            f"a {symbology} code is not a parcel label: scan the label's Code 128 or Code 39"
        )
    shortest, longest = TRACKING_CODE_LENGTH
    if not _PRINTABLE_ASCII.match(code):
        raise ParcelCodeError("a parcel tracking code is printable ASCII only")
    if not shortest <= len(code) <= longest:
        raise ParcelCodeError(
            f"a parcel tracking code has {shortest} to {longest} characters, not {len(code)}"
        )
    return code


def _from_element_strings(body: str, config: ParseConfig) -> Gs1Data:
    """Element strings one after another, as transmitted (FNC1 as separator characters)."""
    separators = tuple(config.separator_chars)
    rest = body.lstrip("".join(separators))  # FNC1 in first position, transmitted
    if not rest:
        raise ParcelCodeError("a GS1 symbol without any element string")
    elements: list[GS1ElementString] = []
    while rest:
        try:
            element = GS1ElementString.extract(rest, config=config)
        except ParseError as exc:
            raise ParcelCodeError(_why_not(rest, len(elements), separators, exc)) from None
        elements.append(element)
        rest = rest[len(element) :].lstrip("".join(separators))
    return _data(elements)


def _from_hri(text: str, config: ParseConfig) -> Gs1Data:
    """``(AI)data(AI)data``, spaces allowed; each element must be whole on its own."""
    hri = "".join(text.split())
    parts = _HRI_ELEMENT.findall(hri)
    if "".join(f"({ai}){data}" for ai, data in parts) != hri:
        raise ParcelCodeError("not a GS1 human-readable string: expected (AI)data(AI)data...")
    elements: list[GS1ElementString] = []
    for number, data in parts:
        where = f"element string {len(elements) + 1}"
        try:
            ai = GS1ApplicationIdentifier.extract(number + data)
        except ParseError:
            ai = None
        if ai is None or ai.ai != number:
            raise ParcelCodeError(f"{where}: ({number}) is not a known GS1 application identifier")
        try:
            elements.append(GS1ElementString.parse(number + data, config=config))
        except ParseError as exc:
            raise ParcelCodeError(_element_problem(where, ai, data, exc)) from None
    return _data(elements)


def _from_digital_link(uri: str) -> Gs1Data | None:
    try:
        link = GS1DigitalLinkURI.parse(uri)
    except ParseError:
        return None  # a web address, not a GS1 Digital Link
    return _data(list(link.element_strings))


def _data(elements: list[GS1ElementString]) -> Gs1Data:
    for element in elements:
        error = element.sscc_error or element.gtin_error or element.gln_error
        if error:
            raise ParcelCodeError(f"{element.ai} {element.ai.data_title}: {error}")
    first: dict[str, GS1ElementString] = {}
    for element in elements:
        first.setdefault(element.ai.ai, element)

    def value(ai: str) -> str | None:
        element = first.get(ai)
        return element.value if element else None

    def day(ai: str) -> date | None:
        element = first.get(ai)
        return element.date if element else None

    gtin = first.get("01")
    return Gs1Data(
        sscc=value("00"),
        gtin=gtin.gtin.as_gtin_14() if gtin and gtin.gtin else None,
        expiry=day("17"),
        best_before=day("15"),
        batch=value("10"),
        serial=value("21"),
        elements=MappingProxyType({ai: element.value for ai, element in first.items()}),
        hri="".join(element.as_hri() for element in elements),
    )


def _why_not(rest: str, parsed: int, separators: tuple[str, ...], exc: ParseError) -> str:
    """A clear reason the element string at the start of ``rest`` does not parse."""
    where = f"element string {parsed + 1}"
    try:
        ai = GS1ApplicationIdentifier.extract(rest)
    except ParseError:
        shown = rest[:12].replace(GS, "<GS>")
        return f"{where}: {shown!r} does not start with a known GS1 application identifier"
    data = rest[len(ai.ai) :]
    for separator in separators:
        data = data.split(separator, maxsplit=1)[0]
    return _element_problem(where, ai, data, exc)


def _element_problem(where: str, ai: GS1ApplicationIdentifier, data: str, exc: ParseError) -> str:
    needed = _shortest_data(ai)
    if len(data) < needed:
        characters = "character" if needed == 1 else "characters"
        follow = f"only {len(data)} follow" if data else "none follow"
        return (
            f"{where} is truncated: {ai} {ai.data_title} ({ai.format}) needs "
            f"{needed} {characters} of data, {follow}"
        )
    return f"{where}: {ai} {ai.data_title} ({ai.format}) is not valid: {exc}"


def _shortest_data(ai: GS1ApplicationIdentifier) -> int:
    """Fewest data characters ``ai`` allows: fixed parts in full, 1 per variable part."""
    required = re.sub(r"\[.*?\]", "", ai.format).split("+")[1:]  # "[...]" parts are optional
    total = 0
    for part in required:
        match = _FORMAT_PART.match(part)
        if match:
            total += 1 if match.group(1) else int(match.group(2))
    return total
