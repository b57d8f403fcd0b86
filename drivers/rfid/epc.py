"""What an EPC says: GS1 keys (GTIN and serial from SGTIN, SSCC, GRAI...) via ``epcpy``.

Decoding never drops a tag: an EPC that no scheme decodes is returned with ``scheme=None`` and
its raw hex, so the caller can report it as undecodable and still count it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from epcpy.epc_schemes.sgtin import SGTIN
from epcpy.utils.common import ConvertException
from epcpy.utils.parsers import hex_to_tag_encodable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecodedEpc:
    epc: str
    """Lower-case hex, as read."""
    scheme: str | None
    """``sgtin``, ``sscc``, ``grai``, ... or None when no scheme decodes it."""
    uri: str | None = None
    """The pure identity URI, e.g. ``urn:epc:id:sgtin:0614141.812345.6789``."""
    gtin: str | None = None
    """GTIN-14, for SGTIN tags."""
    serial: str | None = None
    element_string: str | None = None
    """GS1 element string, e.g. ``(01)80614141123458(21)6789``."""

    @property
    def decoded(self) -> bool:
        return self.scheme is not None


@lru_cache(maxsize=65536)
def decode_epc(epc: str) -> DecodedEpc:
    """Decode one EPC (hex). Cached: a cabinet reads the same tags in every round."""
    epc = epc.lower()
    try:
        tag = hex_to_tag_encodable(epc)
        uri: str = tag.epc_uri
    except Exception as exc:  # epcpy raises several kinds; any of them means "not decodable"
        log.debug("EPC %s is not decodable: %s", epc, exc)
        return DecodedEpc(epc, None)
    scheme = uri.split(":")[3] if uri.count(":") >= 4 else type(tag).__name__.lower()
    gtin = serial = element = None
    if isinstance(tag, SGTIN):
        gtin = tag.gtin()
        serial = uri.rsplit(".", 1)[-1]
    try:
        element = getattr(tag, "gs1_element_string")()  # noqa: B009 (not every scheme has it)
    except (AttributeError, ConvertException, ValueError):
        element = None  # schemes without a GS1 key (GID, USDOD, ADI)
    return DecodedEpc(epc, scheme, uri, gtin, serial, element)


def encode_sgtin96(gtin: str, serial: int, company_prefix_length: int = 7) -> str:
    """The SGTIN-96 EPC (hex) of one item: for tag printers, simulators and tests."""
    from epcpy.epc_schemes.sgtin import SGTIN, SGTINFilterValue

    identity = SGTIN.from_gtin_plus_serial(gtin, str(serial), company_prefix_length)
    hex_epc: str = identity.hex(
        binary_coding_scheme=SGTIN.BinaryCodingScheme.SGTIN_96,
        filter_value=SGTINFilterValue.POS_ITEM,
    )
    return hex_epc.lower()
