"""GS1 element strings on parcel labels: every form scanners send, the errors, and a GS1-128
label drawn in the test, read back from a camera-like frame and parsed."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import zxingcpp

from drivers.camera import CodeReader
from edge.scans.gs1 import Gs1Data, ParcelCodeError, parcel_code_of, parse_gs1
from tests.drivers.test_codes import camera_noise, scene

GS = "\x1d"
# SSCC from biip's documentation (biip.sscc module docstring): GS1 Denmark prefix, check 7.
SSCC = "157035381410375177"
# GS1 General Specifications §3.3.1 build an SSCC from extension digit, GS1 Company Prefix and
# serial reference; this one (GS1 US prefix 0614141, serial 123456789) has check digit 7.
SSCC_US = "106141411234567897"


def parsed(text: str) -> Gs1Data:
    data = parse_gs1(text)
    assert data is not None, f"{text!r} was not recognised as GS1"
    return data


def refused(text: str) -> str:
    with pytest.raises(ParcelCodeError) as caught:
        parse_gs1(text)
    return str(caught.value)


def test_the_biip_documentation_example() -> None:
    # biip.gs1_messages module docstring: "010703206980498815210526100329" is GTIN
    # 07032069804988, best before 2021-05-26, batch 0329.
    data = parsed("]C1010703206980498815210526100329")
    assert data.gtin == "07032069804988"
    assert data.best_before == date(2021, 5, 26)
    assert data.batch == "0329"
    assert (data.sscc, data.expiry, data.serial, data.parcel_code) == (None, None, None, None)
    assert data.hri == "(01)07032069804988(15)210526(10)0329"
    assert dict(data.elements) == {"01": "07032069804988", "15": "210526", "10": "0329"}


def test_an_sscc_parcel_label_with_every_field() -> None:
    text = f"]C100{SSCC}0104012345678901{GS}1725063010LOT-7{GS}21SN0042"
    data = parsed(text)
    assert data.sscc == SSCC
    assert data.parcel_code == SSCC
    assert data.gtin == "04012345678901"
    assert data.expiry == date(2025, 6, 30)
    assert data.batch == "LOT-7"
    assert data.serial == "SN0042"


def test_a_gtin_13_is_given_as_gtin_14() -> None:
    # The EAN-13 4006381333931 in AI (01) is written with its leading zero: GTIN-14.
    assert parsed("]d20104006381333931").gtin == "04006381333931"


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("250615", date(2025, 6, 15)),
        # DD = 00: the last day of the month (GS1 General Specifications, AI (15) and (17)).
        ("250200", date(2025, 2, 28)),
        ("240200", date(2024, 2, 29)),  # a leap year
        ("241200", date(2024, 12, 31)),
        # Century (§7.12): within 49 years back and 50 ahead of now (true until 2048).
        ("991231", date(1999, 12, 31)),
        ("300101", date(2030, 1, 1)),
    ],
)
def test_dates(value: str, day: date) -> None:
    assert parsed(f"]C117{value}").expiry == day
    assert parsed(f"]C115{value}").best_before == day


@pytest.mark.parametrize(
    "text",
    [
        f"]C100{SSCC}",  # GS1-128
        f"]d200{SSCC}",  # GS1 DataMatrix
        f"]Q300{SSCC}",  # GS1 QR Code
        f"]e000{SSCC}",  # GS1 DataBar
        f"]C1{GS}00{SSCC}",  # FNC1 in first position passed on as well
        f"{GS}00{SSCC}",  # no AIM identifier; the leading FNC1 as GS
        f"(00){SSCC}",  # human-readable: what zxing-cpp gives for a GS1 symbol
        f"(00) {SSCC[:9]} {SSCC[9:]}",  # as printed, with spaces
        f"00{SSCC}",  # bare digits from a keyboard-wedge scanner without AIM identifiers
        f"  ]C100{SSCC}\r\n",  # line ends and blanks around
        f"https://id.gs1.org/00/{SSCC}",  # GS1 Digital Link
        f"]Q1https://id.gs1.org/00/{SSCC}",
    ],
)
def test_every_form_a_scanner_sends(text: str) -> None:
    assert parsed(text).sscc == SSCC


@pytest.mark.parametrize("separator", [GS, "<GS>", "\u241d"])
def test_fnc1_separators_and_their_stand_ins(separator: str) -> None:
    data = parsed(f"]C10104012345678901{separator}10ABC{separator}21XYZ")
    assert (data.batch, data.serial) == ("ABC", "XYZ")


def test_a_site_can_name_its_scanners_stand_in_for_fnc1() -> None:
    text = "]C110ABC|21XYZ"
    # "|" is outside the GS1 character set: without naming it, the string is refused.
    assert "'|21XYZ' does not start with a known GS1 application identifier" in refused(text)
    data = parse_gs1(text, extra_separators="|")
    assert data is not None and (data.batch, data.serial) == ("ABC", "XYZ")


def test_the_biip_digital_link_example() -> None:
    # biip.gs1_digital_link_uris module docstring (a GS1 Digital Link standard example).
    data = parsed("https://id.gs1.org/00/106141412345678908?02=00614141123452&37=25&10=ABC123")
    assert data.sscc == "106141412345678908"
    assert data.batch == "ABC123"
    assert data.elements["02"] == "00614141123452"
    assert data.elements["37"] == "25"


@pytest.mark.parametrize(
    "text",
    [
        "ABC123456",  # a courier's own tracking code
        "JJD0001234567890",
        "]C0ABC123456",  # a plain Code 128 (AIM modifier 0: no FNC1)
        "]Q1locker:42:PICKUP-7781",
        "]E04006381333931",  # an EAN-13 product barcode
        "4006381333931",
        "010703206980498815210526100329",  # bare digits not led by an SSCC: not trusted as GS1
        "00340123450000000018",  # bare: SSCC check digit wrong, so just digits
        f"00{SSCC}X",
        "https://example.com/parcel/42",
        "",
    ],
)
def test_what_is_not_gs1(text: str) -> None:
    assert parse_gs1(text) is None


def test_truncated_element_strings_are_refused() -> None:
    assert refused(f"]C100{SSCC[:10]}") == (
        "element string 1 is truncated: (00) SSCC (N2+N18) needs 18 characters of data, "
        "only 10 follow"
    )
    assert "element string 2 is truncated: (17) USE BY or EXPIRY" in refused(f"]C100{SSCC}1725")
    assert "needs 18 characters of data, only 17 follow" in refused(f"(00){SSCC[:-1]}")
    assert "(10) BATCH/LOT (N2+X..20) needs 1 character of data, none follow" in refused(
        f"(00){SSCC}(10)"
    )
    assert "'9' does not start with a known GS1 application identifier" in refused(f"]C100{SSCC}9")


def test_bad_check_digits_are_refused() -> None:
    wrong = SSCC[:-1] + "8"
    assert refused(f"]C100{wrong}") == (
        f"(00) SSCC: Invalid SSCC check digit for '{wrong}': Expected 7, got 8."
    )
    assert "Invalid GTIN check digit" in refused("]C10104012345678902")
    assert "Invalid SSCC check digit" in refused(f"(00){wrong}")


def test_invalid_dates_and_data_are_refused() -> None:
    assert "(17) USE BY or EXPIRY (N2+N6) is not valid" in refused("]C117251301")  # month 13
    assert "(00) SSCC (N2+N18) is not valid" in refused(f"]C100{SSCC[:10]}ABCDEFGH")
    assert "does not start with a known GS1 application identifier" in refused("]C1xyz")
    assert "without any element string" in refused(f"]C1{GS}")
    assert "(23) is not a known GS1 application identifier" in refused(f"(00){SSCC}(23)1")
    assert "expected (AI)data" in refused(f"(00){SSCC}(1x)2")


def test_parcel_code_of_a_gs1_label_is_its_sscc() -> None:
    assert parcel_code_of(f"]C100{SSCC}17250200", "code128") == SSCC
    assert parcel_code_of(f"(00){SSCC_US}", "code128") == SSCC_US
    assert parcel_code_of(f"]d200{SSCC}", "datamatrix") == SSCC
    with pytest.raises(ParcelCodeError, match=r"no SSCC \(AI 00\)"):
        parcel_code_of("]C10104012345678901", "code128")
    with pytest.raises(ParcelCodeError, match="truncated"):
        parcel_code_of(f"]C100{SSCC[:10]}", None)


@pytest.mark.parametrize(
    ("text", "symbology", "code"),
    [
        ("JJD0001234567890", "code128", "JJD0001234567890"),
        ("PICK-881", "code39", "PICK-881"),
        ("  1Z999AA10123456784\r\n", None, "1Z999AA10123456784"),  # keyboard wedge
        ("]C0AB 123 456", None, "AB 123 456"),  # AIM identifier says Code 128
        ("]A0PICK-881", None, "PICK-881"),  # AIM identifier says Code 39
        ("X" * 40, "code128", "X" * 40),
    ],
)
def test_parcel_code_of_a_courier_tracking_label(text: str, symbology: str, code: str) -> None:
    assert parcel_code_of(text, symbology) == code


@pytest.mark.parametrize(
    ("text", "symbology", "reason"),
    [
        ("ABC12", "code128", "6 to 40 characters, not 5"),
        ("X" * 41, "code128", "6 to 40 characters, not 41"),
        ("PARCEL\t42", "code128", "printable ASCII only"),
        ("PAKET-ÄÖ1", None, "printable ASCII only"),
        ("locker:42:PICKUP-7781", "qr", "a qr code is not a parcel label"),
        ("4006381333931", "ean13", "a ean13 code is not a parcel label"),
        ("]E04006381333931", None, "a ean code is not a parcel label"),
        ("]Q1some text here", None, "a qr code is not a parcel label"),
    ],
)
def test_what_is_no_parcel_label(text: str, symbology: str | None, reason: str) -> None:
    with pytest.raises(ParcelCodeError, match=reason):
        parcel_code_of(text, symbology)


def gs1_label(fmt: zxingcpp.BarcodeFormat, hri: str, scale: int) -> np.ndarray:
    """A GS1 symbol (FNC1 in first position) drawn by zxing-cpp's writer from its HRI."""
    symbol = zxingcpp.create_barcode(hri, fmt, gs1=True)
    return np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=scale)).copy()


@pytest.mark.parametrize(
    ("fmt", "symbology", "scale"),
    [
        (zxingcpp.BarcodeFormat.Code128, "code128", 2),
        (zxingcpp.BarcodeFormat.DataMatrix, "datamatrix", 5),
    ],
)
def test_a_gs1_label_read_from_a_camera_frame(
    fmt: zxingcpp.BarcodeFormat, symbology: str, scale: int
) -> None:
    hri = f"(00){SSCC}(17)250200(10)LOT-7"
    symbol = zxingcpp.create_barcode(hri, fmt, gs1=True)
    assert symbol.symbology_identifier in ("]C1", "]d2")  # really GS1, not plain text
    frame = camera_noise(scene([gs1_label(fmt, hri, scale)], seed=7), seed=7)

    codes = CodeReader(qr=False, linear=("code128", "datamatrix")).read(frame)

    assert [(code.symbology, code.text) for code in codes] == [(symbology, hri)]
    data = parsed(codes[0].text)
    assert (data.sscc, data.expiry, data.batch) == (SSCC, date(2025, 2, 28), "LOT-7")
    assert parcel_code_of(codes[0].text, codes[0].symbology) == SSCC


def test_a_plain_code128_tracking_label_read_from_a_camera_frame() -> None:
    symbol = zxingcpp.create_barcode("JJD0001234567890", zxingcpp.BarcodeFormat.Code128)
    label = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=2)).copy()
    frame = camera_noise(scene([label], seed=3), seed=3)
    (code,) = CodeReader(qr=False, linear=("code128",)).read(frame)
    assert parse_gs1(code.text) is None
    assert parcel_code_of(code.text, code.symbology) == "JJD0001234567890"
