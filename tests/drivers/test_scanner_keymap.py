"""Keyboard-wedge decoding: key events to text, pure, and recorded scans through HidScanner.

The hand-built sequences below name each key explicitly (not through the encoder), so they
check the layout tables against what the keyboards print. The recordings in
``scanner_recordings/`` run through HidScanner's real reading path (see its README).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanner import HidScanner, RejectedScan, RejectReason, ScannedCode
from drivers.scanner.keymap import (
    CODES_BY_NAME,
    EV_KEY,
    EV_MSC,
    EV_SYN,
    KEY_0,
    KEY_1,
    KEY_2,
    KEY_3,
    KEY_6,
    KEY_7,
    KEY_A,
    KEY_B,
    KEY_C,
    KEY_CAPSLOCK,
    KEY_D,
    KEY_E,
    KEY_ENTER,
    KEY_EQUAL,
    KEY_F12,
    KEY_GRAVE,
    KEY_KP0,
    KEY_KP1,
    KEY_KP2,
    KEY_KP3,
    KEY_KP4,
    KEY_KP5,
    KEY_KP6,
    KEY_KP8,
    KEY_KP9,
    KEY_KPDOT,
    KEY_KPENTER,
    KEY_LEFTALT,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    KEY_M,
    KEY_MINUS,
    KEY_NUMLOCK,
    KEY_Q,
    KEY_RIGHTALT,
    KEY_RIGHTBRACE,
    KEY_RIGHTSHIFT,
    KEY_SEMICOLON,
    KEY_SPACE,
    KEY_TAB,
    KEY_W,
    KEY_X,
    KEY_Y,
    KEY_Z,
    LAYOUTS,
    MSC_SCAN,
    SYN_DROPPED,
    SYN_REPORT,
    DiscardedCode,
    KeyDecoder,
    KeyEvent,
    key_events,
)
from drivers.scanner.replay import ReplayDevice, load_recording

RECORDINGS = sorted((Path(__file__).parent / "scanner_recordings").glob("*.json"))
WAIT = 3.0
PRESS, RELEASE, REPEAT = 1, 0, 2


def tap(code: int, *modifiers: int) -> list[tuple[int, int, int]]:
    """Press and release ``code`` with ``modifiers`` held, as a scanner types one character."""
    events = [(EV_KEY, m, PRESS) for m in modifiers]
    events += [(EV_KEY, code, PRESS), (EV_KEY, code, RELEASE)]
    events += [(EV_KEY, m, RELEASE) for m in reversed(modifiers)]
    return events


ENTER = tap(KEY_ENTER)


class Decoded:
    """A decoder with everything it returned and discarded."""

    def __init__(self, layout: str = "us", **kwargs: Any) -> None:
        self.discarded: list[DiscardedCode] = []
        self.decoder = KeyDecoder(layout, on_discard=self.discarded.append, **kwargs)

    def feed(self, events: list[tuple[int, int, int]] | list[KeyEvent]) -> list[str]:
        codes = []
        for event in events:
            text = self.decoder.feed(*event)
            if text is not None:
                codes.append(text)
        return codes

    @property
    def reasons(self) -> list[RejectReason]:
        return [d.reason for d in self.discarded]


def decode(layout: str, *keys: list[tuple[int, int, int]]) -> list[str]:
    return Decoded(layout).feed([event for key in keys for event in key])


# -- the tables against what the keyboards print ----------------------------------------------


def test_key_codes_are_the_kernels() -> None:
    ecodes = pytest.importorskip("evdev.ecodes")
    wrong = {name: code for name, code in CODES_BY_NAME.items() if getattr(ecodes, name) != code}
    assert wrong == {}
    assert len(CODES_BY_NAME) > 80  # the comparison covered the whole table


def test_us_layout() -> None:
    assert decode(
        "us",
        tap(KEY_Z),
        tap(KEY_Y),
        tap(KEY_2, KEY_LEFTSHIFT),
        tap(KEY_A, KEY_RIGHTSHIFT),
        tap(KEY_SEMICOLON, KEY_LEFTSHIFT),
        tap(KEY_RIGHTBRACE),
        tap(KEY_GRAVE, KEY_LEFTSHIFT),
        ENTER,
    ) == ["zy@A:]~"]


def test_de_layout_swaps_y_and_z_and_shifts_digits_differently() -> None:
    assert decode(
        "de",
        tap(KEY_Z),
        tap(KEY_Y, KEY_LEFTSHIFT),
        tap(KEY_2, KEY_LEFTSHIFT),
        tap(KEY_3, KEY_LEFTSHIFT),
        tap(KEY_7, KEY_LEFTSHIFT),
        tap(KEY_0, KEY_LEFTSHIFT),
        tap(KEY_MINUS),
        tap(KEY_SEMICOLON),
        tap(KEY_RIGHTBRACE, KEY_LEFTSHIFT),
        ENTER,
    ) == ['yZ"§/=ßö*']


def test_de_layout_altgr() -> None:
    assert decode(
        "de",
        tap(KEY_Q, KEY_RIGHTALT),
        tap(KEY_7, KEY_RIGHTALT),
        tap(KEY_0, KEY_RIGHTALT),
        tap(KEY_MINUS, KEY_RIGHTALT),
        tap(KEY_E, KEY_RIGHTALT),
        ENTER,
    ) == ["@{}\\€"]


def test_fr_layout_needs_shift_for_digits() -> None:
    assert decode(
        "fr",
        tap(KEY_Q),
        tap(KEY_W),
        tap(KEY_A),
        tap(KEY_SEMICOLON),
        tap(KEY_M),
        tap(KEY_1),
        tap(KEY_1, KEY_LEFTSHIFT),
        tap(KEY_2),
        tap(KEY_0, KEY_RIGHTALT),
        ENTER,
    ) == ["azqm,&1é@"]


def test_keypad_types_digits_whatever_the_layout() -> None:
    keypad = [tap(KEY_KP1), tap(KEY_KP0), tap(KEY_KPDOT), tap(KEY_KP9)]
    assert decode("us", *keypad, ENTER) == ["10.9"]
    assert decode("fr", *keypad, ENTER) == ["10.9"]
    assert decode("de", *keypad, ENTER) == ["10,9"]  # the German keypad has a decimal comma


# -- terminators, shift state, stuck keys ------------------------------------------------------


def test_enter_and_keypad_enter_end_a_code_and_tab_when_configured() -> None:
    assert decode("us", tap(KEY_A), tap(KEY_KPENTER), tap(KEY_B), ENTER) == ["a", "b"]
    tab = Decoded("us", terminator="tab")
    assert tab.feed(tap(KEY_A) + tap(KEY_TAB) + tap(KEY_B) + tap(KEY_TAB)) == ["a", "b"]
    # Enter is no character: a code containing it would be wrong, so it is rejected whole.
    assert tab.feed(tap(KEY_C) + ENTER + tap(KEY_D) + tap(KEY_TAB)) == []
    assert tab.reasons == [RejectReason.UNKNOWN_KEYS]


def test_a_lone_terminator_is_no_code() -> None:
    decoded = Decoded("us")
    assert decoded.feed(ENTER + ENTER + tap(KEY_A) + ENTER) == ["a"]
    assert decoded.decoder.stats.empty == 2
    assert decoded.discarded == []


def test_autorepeat_never_multiplies_a_character() -> None:
    held = [(EV_KEY, KEY_A, PRESS)] + [(EV_KEY, KEY_A, REPEAT)] * 20 + [(EV_KEY, KEY_A, RELEASE)]
    decoded = Decoded("us")
    assert decoded.feed(held + tap(KEY_B) + ENTER) == ["ab"]
    assert decoded.decoder.stats.repeats_ignored == 20


def test_a_stuck_enter_makes_one_code() -> None:
    stuck = [(EV_KEY, KEY_ENTER, PRESS)] + [(EV_KEY, KEY_ENTER, REPEAT)] * 10
    decoded = Decoded("us")
    assert decoded.feed(tap(KEY_A) + stuck + [(EV_KEY, KEY_ENTER, RELEASE)]) == ["a"]
    assert decoded.decoder.stats.empty == 0


def test_a_key_held_across_the_end_of_a_code_does_not_carry_over() -> None:
    decoded = Decoded("us")
    first = [(EV_KEY, KEY_LEFTSHIFT, PRESS), *tap(KEY_X), *ENTER]  # Shift still down
    second = [*tap(KEY_A), (EV_KEY, KEY_LEFTSHIFT, RELEASE), *tap(KEY_B), *ENTER]
    assert decoded.feed(first + second) == ["X", "ab"]


def test_keys_stuck_since_long_before_a_scan_are_forgotten() -> None:
    decoded = Decoded("us", max_gap_s=1.0)
    stuck = [
        KeyEvent(EV_KEY, KEY_LEFTSHIFT, PRESS, 10.0),
        KeyEvent(EV_KEY, KEY_LEFTSHIFT, REPEAT, 10.25),
    ]
    scan = [KeyEvent(*e, 13.0) for e in tap(KEY_A) + tap(KEY_B) + ENTER]
    assert decoded.feed(stuck + scan) == ["ab"]
    assert decoded.discarded == []  # nothing was typed: nothing to reject


def test_a_code_without_terminator_is_stale_when_the_next_scan_starts() -> None:
    decoded = Decoded("us", max_gap_s=1.0)
    partial = [KeyEvent(*e, 5.0) for e in tap(KEY_A) + tap(KEY_B)]
    scan = [KeyEvent(*e, 7.5) for e in tap(KEY_C) + ENTER]
    assert decoded.feed(partial + scan) == ["c"]
    assert [(d.reason, d.text) for d in decoded.discarded] == [(RejectReason.STALE, "ab")]
    assert "ab" not in decoded.discarded[0].detail  # details never carry the code


def test_without_timestamps_or_gap_nothing_goes_stale() -> None:
    decoded = Decoded("us", max_gap_s=None)
    partial = [KeyEvent(*e, 5.0) for e in tap(KEY_A)]
    scan = [KeyEvent(*e, 500.0) for e in tap(KEY_B) + ENTER]
    assert decoded.feed(partial + scan) == ["ab"]


def test_caps_lock_flips_letters_only() -> None:
    assert decode(
        "us", tap(KEY_CAPSLOCK), tap(KEY_A), tap(KEY_B, KEY_LEFTSHIFT), tap(KEY_1), ENTER
    ) == ["Ab1"]


def test_modifier_and_lock_keys_type_nothing() -> None:
    decoded = Decoded("us")
    held = [(EV_KEY, KEY_LEFTCTRL, PRESS), (EV_KEY, KEY_RIGHTSHIFT, PRESS)]
    assert decoded.feed(tap(KEY_NUMLOCK) + held + ENTER) == []  # a lone terminator
    assert decoded.discarded == [] and decoded.decoder.stats.unknown_keys == 0


# -- dead keys, control characters, Alt codes --------------------------------------------------


def test_dead_keys_compose_or_stand_alone() -> None:
    assert decode("de", tap(KEY_GRAVE), tap(KEY_E), ENTER) == ["ê"]
    assert decode("de", tap(KEY_GRAVE), tap(KEY_SPACE), ENTER) == ["^"]
    assert decode("de", tap(KEY_EQUAL), tap(KEY_E), ENTER) == ["é"]
    assert decode("de", tap(KEY_EQUAL, KEY_LEFTSHIFT), tap(KEY_A, KEY_LEFTSHIFT), ENTER) == ["À"]
    assert decode("de", tap(KEY_GRAVE), tap(KEY_X), ENTER) == ["^x"]  # nothing to compose
    assert decode("de", tap(KEY_GRAVE), tap(KEY_GRAVE), ENTER) == ["^"]
    assert decode("de", tap(KEY_1), tap(KEY_GRAVE), ENTER) == ["1^"]  # pending at the end
    assert decode("fr", tap(KEY_2, KEY_RIGHTALT), tap(KEY_SPACE), ENTER) == ["~"]


def test_ctrl_keys_type_control_characters() -> None:
    gs, rs, eot = "\x1d", "\x1e", "\x04"
    assert decode(
        "us",
        tap(KEY_RIGHTBRACE, KEY_LEFTCTRL),
        tap(KEY_6, KEY_LEFTCTRL, KEY_LEFTSHIFT),
        tap(KEY_D, KEY_LEFTCTRL),
        ENTER,
    ) == [gs + rs + eot]
    # On a German keyboard the key right of P says "+": Ctrl+] is still that key.
    assert decode("de", tap(KEY_RIGHTBRACE, KEY_LEFTCTRL), ENTER) == [gs]
    # A letter goes by the layout: Ctrl+Y is the key marked Y (KEY_Z on QWERTZ).
    assert decode("de", tap(KEY_Z, KEY_LEFTCTRL), ENTER) == ["\x19"]


def test_alt_keypad_codes() -> None:
    def alt(*digits: int) -> list[tuple[int, int, int]]:
        keys = [e for d in digits for e in tap(d)]
        return [(EV_KEY, KEY_LEFTALT, PRESS), *keys, (EV_KEY, KEY_LEFTALT, RELEASE)]

    assert decode("us", alt(KEY_KP0, KEY_KP2, KEY_KP9), alt(KEY_KP4, KEY_KP8), ENTER) == ["\x1d0"]
    assert decode("us", alt(KEY_KP0, KEY_KP2, KEY_KP2, KEY_KP8), ENTER) == ["ä"]  # cp1252
    assert decode("us", alt(KEY_KP1, KEY_KP3, KEY_KP2), ENTER) == ["ä"]  # cp437
    # An Alt code after a dead key is the next character, in order: composed with it.
    assert decode("de", tap(KEY_GRAVE), alt(KEY_KP6, KEY_KP5), tap(KEY_1), ENTER) == ["Â1"]
    # On layouts with AltGr the right Alt is AltGr, not Alt: no Alt code.
    decoded = Decoded("de")
    assert decoded.feed(
        [(EV_KEY, KEY_RIGHTALT, PRESS), *tap(KEY_KP4), (EV_KEY, KEY_RIGHTALT, RELEASE), *ENTER]
    ) == ["4"]


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_keys_reject_the_code_and_never_crash() -> None:
    decoded = Decoded("us")
    codes = decoded.feed(tap(KEY_A) + tap(KEY_F12) + tap(KEY_B) + ENTER + tap(KEY_C) + ENTER)
    assert codes == ["c"]
    assert decoded.reasons == [RejectReason.UNKNOWN_KEYS]
    assert decoded.discarded[0].text == "ab"
    assert "88" in decoded.discarded[0].detail
    assert decoded.decoder.stats.unknown_keys == 1
    # Unheard-of codes, types and values are no problem either.
    assert decoded.feed([(EV_KEY, 0x2FF, PRESS), (EV_KEY, KEY_A, 7), (0x15, 1, 1), *ENTER]) == []
    assert decoded.reasons == [RejectReason.UNKNOWN_KEYS] * 2


def test_a_code_longer_than_the_limit_is_rejected() -> None:
    decoded = Decoded("us", max_length=5)
    assert decoded.feed(tap(KEY_A) * 9 + ENTER + tap(KEY_B) * 5 + ENTER) == ["bbbbb"]
    assert [(d.reason, d.text) for d in decoded.discarded] == [(RejectReason.TOO_LONG, "aaaaa")]


def test_dropped_events_reject_the_code_in_progress() -> None:
    decoded = Decoded("us")
    events = [
        *tap(KEY_A),
        (EV_SYN, SYN_DROPPED, 0),
        (EV_KEY, KEY_B, PRESS),  # part of what the kernel could not deliver whole: ignored
        (EV_SYN, SYN_REPORT, 0),
        *tap(KEY_C),
        *ENTER,
        *tap(KEY_D),
        *ENTER,
    ]
    assert decoded.feed(events) == ["d"]
    assert [(d.reason, d.text) for d in decoded.discarded] == [(RejectReason.EVENTS_DROPPED, "ac")]


def test_a_damaged_code_cut_off_keeps_its_first_cause() -> None:
    decoded = Decoded("us")
    decoded.feed(tap(KEY_A) + tap(KEY_F12))
    assert decoded.decoder.discard(RejectReason.CUT_OFF, "device lost")
    [discarded] = decoded.discarded
    assert discarded.reason is RejectReason.UNKNOWN_KEYS
    assert "codes 88" in discarded.detail and discarded.detail.endswith("then device lost")
    assert not decoded.decoder.discard(RejectReason.CUT_OFF, "nothing left")  # nothing pending


def test_misc_and_sync_events_are_ignored() -> None:
    events = [(EV_MSC, MSC_SCAN, 0x70004), *tap(KEY_A), (EV_SYN, SYN_REPORT, 0), *ENTER]
    assert decode("us", events) == ["a"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keyboard layout"):
        KeyDecoder("xx")
    with pytest.raises(ValueError, match="unknown terminator"):
        KeyDecoder("us", "space")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_gap_s"):
        KeyDecoder("us", max_gap_s=0)


# -- the scanner's side: what it types decodes back to the same text ------------------------


def typable(layout: str) -> st.SearchStrategy[str]:
    alphabet = st.characters(codec="ascii", min_codepoint=0x20, max_codepoint=0x7E)
    extra = {"us": "", "de": "äöüÄÖÜß§°€µ²³éèâ", "fr": "éèçàù°£§µ€²êë"}[layout]
    return st.text(st.one_of(alphabet, st.sampled_from(extra or " ")), min_size=1, max_size=60)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_typed_text_decodes_back(layout: str, data: st.DataObject) -> None:
    texts = data.draw(st.lists(typable(layout), min_size=1, max_size=4))
    alt_mode = data.draw(st.booleans())
    decoded = Decoded(layout)
    events = [e for text in texts for e in key_events(text, layout, alt_codes=alt_mode)]
    assert decoded.feed(events) == texts
    assert decoded.discarded == []


def test_control_characters_type_and_decode_on_every_layout() -> None:
    text = "[)>\x1e06\x1d1JUN123\x1e\x04"  # ISO/IEC 15434 envelope, as on DataMatrix labels
    for layout in LAYOUTS:
        assert Decoded(layout).feed(key_events(text, layout)) == [text]


def test_characters_no_keyboard_can_type_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be typed"):
        key_events("日本", "us")


# -- recordings through HidScanner's reading path -----------------------------------------------


class Replay:
    """A HidScanner reading a ReplayDevice, with everything it reports in arrival order."""

    def __init__(self) -> None:
        self.device = ReplayDevice()
        self.outcomes: asyncio.Queue[ScannedCode | RejectedScan] = asyncio.Queue()
        self.availability: list[tuple[bool, str | None]] = []
        self.scanner: HidScanner | None = None

    async def start(self, **options: Any) -> HidScanner:
        self.scanner = HidScanner(
            "wedge-1",
            self.device.path,
            on_scan=self.outcomes.put_nowait,
            on_rejected=self.outcomes.put_nowait,
            on_availability=lambda up, why: self.availability.append((up, why)),
            source=self.device.source,
            reconnect_initial=0.01,
            reconnect_max=0.05,
            **options,
        )
        await self.scanner.start()
        assert await self.scanner.wait_available(WAIT)
        return self.scanner

    async def next(self) -> ScannedCode | RejectedScan:
        return await asyncio.wait_for(self.outcomes.get(), WAIT)


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    r = Replay()
    yield r
    if r.scanner is not None:
        await r.scanner.close()


def test_there_are_recordings() -> None:
    assert len(RECORDINGS) >= 8


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
async def test_recording_replays_through_the_hid_scanner(replay: Replay, path: Path) -> None:
    recording = load_recording(path)
    scanner = await replay.start(
        layout=recording.layout, terminator=recording.terminator, **recording.options
    )
    replay.device.send(recording.steps)
    expected_scans = recording.expect["scans"]
    expected_rejected = recording.expect["rejected"]
    got = [await replay.next() for _ in range(len(expected_scans) + len(expected_rejected))]

    scans = [o for o in got if isinstance(o, ScannedCode)]
    assert len(scans) == len(expected_scans)
    assert [
        {key: getattr(scan, key) for key in expected}
        for scan, expected in zip(scans, expected_scans, strict=True)
    ] == expected_scans
    assert [o.reason.value for o in got if isinstance(o, RejectedScan)] == expected_rejected
    assert all(scan.device == "wedge-1" for scan in scans)
    # The last event of every recording completes a scan: nothing else can still be on its way.
    assert replay.outcomes.empty()
    assert scanner.metrics.scans == len(expected_scans)
    assert sum(scanner.metrics.rejected.values()) == len(expected_rejected)
    unplugs = recording.steps.count("unplug")
    assert scanner.metrics.reconnects == unplugs
    assert replay.device.opens == unplugs + 1
    assert [up for up, _why in replay.availability] == [True] + [False, True] * unplugs


async def test_recorded_stuck_keys_are_counted(replay: Replay) -> None:
    recording = load_recording(RECORDINGS[0].parent / "stuck_keys_us.json")
    scanner = await replay.start()
    replay.device.send(recording.steps)
    texts = [await replay.next() for _ in range(3)]
    assert [t.text for t in texts if isinstance(t, ScannedCode)] == [
        "PICKUP-1234",
        "Courier-X",
        "abc-9",
    ]
    assert scanner.metrics.repeats_ignored == sum(
        1 for s in recording.steps if isinstance(s, KeyEvent) and s.value == REPEAT
    )
    assert scanner.metrics.repeats_ignored > 5
