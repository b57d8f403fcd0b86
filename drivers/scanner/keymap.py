"""Keystrokes of a keyboard-wedge scanner back into the text of the code, without any device.

A USB HID scanner in keyboard mode types each code as key events (Linux ``EV_KEY``: value 1
press, 0 release, 2 autorepeat), then a terminator key. :class:`KeyDecoder` is the state machine
that turns them back into text, given the keyboard layout the scanner was set to ("us", "de",
"fr"): the same key code is ``z`` on a US keyboard and ``y`` on a German one, and ``1`` needs
Shift on a French one.

What it understands:

* Shift (either), Caps Lock (flips the case of letters), AltGr (right Alt, on layouts that have
  it) for characters such as ``@`` on "de", and dead keys (``^`` then a space is ``^``; ``^``
  then ``e`` is ``ê``).
* Ctrl+key as an ASCII control character, as scanners in "Ctrl+ASCII" mode send GS (FNC1 in GS1
  codes) as Ctrl+], RS as Ctrl+^ and EOT as Ctrl+D. The key is read through the layout first,
  then by its position on a US keyboard (Ctrl+] is the key right of P whatever it says).
* Alt+keypad digits ("ALT mode", which some scanners use to be layout independent): decimal
  code, typed while left Alt is held, ends at Alt's release. Below 128 it is ASCII; with a leading
  0 it is cp1252, otherwise cp437, as on Windows.
* The keypad (Num Lock assumed on, as scanners expect).

Behaviour the rest of the system can rely on:

* A code ends at the terminator ("enter": Enter or keypad Enter; "tab": Tab). A terminator with
  nothing before it is ignored.
* Autorepeat events (value 2) are ignored: a key held down is emitted once, when pressed.
* Keys held when a code ends are forgotten: a modifier stuck down (a lost release) does not
  carry into the next code, and the stuck key's late release is ignored.
* With ``max_gap_s``, when a key press comes more than ``max_gap_s`` after the previous one, a
  partial code is discarded as STALE and keys still held are forgotten before that press is
  handled: a truncated code, a key pressed long before the scan or a stuck Shift never alter
  the next code. (Scanners type a code in one burst, milliseconds per key.)
* A key the layout has no character for is counted in ``stats.unknown_keys`` and the code it
  was part of is discarded at its terminator (UNKNOWN_KEYS): a code missing a character is
  never delivered. The same for a code longer than ``max_length`` (TOO_LONG).
* ``SYN_DROPPED`` (the kernel's buffer overflowed and events were lost): everything up to the
  next ``SYN_REPORT`` is ignored, key state is reset and the code in progress is discarded at
  its terminator (EVENTS_DROPPED), because characters of it may be missing.

Discarded codes are reported through ``on_discard``; nothing here raises on bad input.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .events import RejectReason

# -- Linux input event codes (include/uapi/linux/input-event-codes.h) -------------------------
# Defined here so that decoding needs neither a device nor python-evdev.

EV_SYN = 0
EV_KEY = 1
EV_MSC = 4
SYN_REPORT = 0
SYN_DROPPED = 3
MSC_SCAN = 4

KEY_RELEASE, KEY_PRESS, KEY_REPEAT = 0, 1, 2

KEY_ESC = 1
KEY_1 = 2
KEY_2 = 3
KEY_3 = 4
KEY_4 = 5
KEY_5 = 6
KEY_6 = 7
KEY_7 = 8
KEY_8 = 9
KEY_9 = 10
KEY_0 = 11
KEY_MINUS = 12
KEY_EQUAL = 13
KEY_BACKSPACE = 14
KEY_TAB = 15
KEY_Q = 16
KEY_W = 17
KEY_E = 18
KEY_R = 19
KEY_T = 20
KEY_Y = 21
KEY_U = 22
KEY_I = 23
KEY_O = 24
KEY_P = 25
KEY_LEFTBRACE = 26
KEY_RIGHTBRACE = 27
KEY_ENTER = 28
KEY_LEFTCTRL = 29
KEY_A = 30
KEY_S = 31
KEY_D = 32
KEY_F = 33
KEY_G = 34
KEY_H = 35
KEY_J = 36
KEY_K = 37
KEY_L = 38
KEY_SEMICOLON = 39
KEY_APOSTROPHE = 40
KEY_GRAVE = 41
KEY_LEFTSHIFT = 42
KEY_BACKSLASH = 43
KEY_Z = 44
KEY_X = 45
KEY_C = 46
KEY_V = 47
KEY_B = 48
KEY_N = 49
KEY_M = 50
KEY_COMMA = 51
KEY_DOT = 52
KEY_SLASH = 53
KEY_RIGHTSHIFT = 54
KEY_KPASTERISK = 55
KEY_LEFTALT = 56
KEY_SPACE = 57
KEY_CAPSLOCK = 58
KEY_F1 = 59
KEY_F12 = 88
KEY_NUMLOCK = 69
KEY_SCROLLLOCK = 70
KEY_KP7 = 71
KEY_KP8 = 72
KEY_KP9 = 73
KEY_KPMINUS = 74
KEY_KP4 = 75
KEY_KP5 = 76
KEY_KP6 = 77
KEY_KPPLUS = 78
KEY_KP1 = 79
KEY_KP2 = 80
KEY_KP3 = 81
KEY_KP0 = 82
KEY_KPDOT = 83
KEY_102ND = 86
KEY_KPENTER = 96
KEY_RIGHTCTRL = 97
KEY_KPSLASH = 98
KEY_RIGHTALT = 100
KEY_KPEQUAL = 117
KEY_LEFTMETA = 125
KEY_RIGHTMETA = 126

#: Every constant above by name ("KEY_A", "EV_KEY", "SYN_REPORT"…), for recordings.
CODES_BY_NAME: dict[str, int] = {
    name: value
    for name, value in globals().items()
    if name.startswith(("KEY_", "EV_", "SYN_", "MSC_")) and isinstance(value, int)
}
for _unused in ("KEY_RELEASE", "KEY_PRESS", "KEY_REPEAT"):  # event values, not key codes
    del CODES_BY_NAME[_unused]


class KeyEvent(NamedTuple):
    """One input event as read from a device (or a recording)."""

    type: int
    code: int
    value: int
    at: float | None = None  # seconds (the event's timestamp); None if unknown


# -- layouts ----------------------------------------------------------------------------------

PLAIN, SHIFT, ALTGR = 0, 1, 2


@dataclass(frozen=True, slots=True)
class DeadKey:
    """A key that types nothing by itself but accents the next character."""

    accent: str


Symbol = str | DeadKey

# Spacing accent -> combining mark, for composing a dead key with the next character.
_ACUTE = "\u00b4"
_COMBINING = {"^": "\u0302", _ACUTE: "\u0301", "`": "\u0300", "~": "\u0303", "¨": "\u0308"}


@dataclass(frozen=True)
class Layout:
    """What each key types at each level (plain, Shift, AltGr) on one keyboard layout."""

    name: str
    keys: Mapping[int, tuple[Symbol | None, Symbol | None, Symbol | None]]
    keypad: Mapping[int, str]
    has_altgr: bool

    def symbol(self, code: int, level: int) -> Symbol | None:
        levels = self.keys.get(code)
        return None if levels is None else levels[level]


_NONE = "∅"  # in the tables below: nothing at this level
_DIGIT_ROW: tuple[int, ...] = (KEY_GRAVE, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7)
_DIGIT_ROW += (KEY_8, KEY_9, KEY_0, KEY_MINUS, KEY_EQUAL)
_TOP_ROW: tuple[int, ...] = (KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P)
_TOP_ROW += (KEY_LEFTBRACE, KEY_RIGHTBRACE)
_HOME_ROW: tuple[int, ...] = (KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L)
_HOME_ROW += (KEY_SEMICOLON, KEY_APOSTROPHE, KEY_BACKSLASH)
_BOTTOM_ROW: tuple[int, ...] = (KEY_102ND, KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M)
_BOTTOM_ROW += (KEY_COMMA, KEY_DOT, KEY_SLASH)
_KEYPAD_DIGITS = {
    KEY_KP0: "0",
    KEY_KP1: "1",
    KEY_KP2: "2",
    KEY_KP3: "3",
    KEY_KP4: "4",
    KEY_KP5: "5",
    KEY_KP6: "6",
    KEY_KP7: "7",
    KEY_KP8: "8",
    KEY_KP9: "9",
}
_KEYPAD_OPERATORS = {
    KEY_KPSLASH: "/",
    KEY_KPASTERISK: "*",
    KEY_KPMINUS: "-",
    KEY_KPPLUS: "+",
    KEY_KPEQUAL: "=",
}


def _token(token: str) -> Symbol | None:
    """Table syntax: a character; ``∅`` for nothing; ``^*`` for a dead ``^``."""
    if token == _NONE:
        return None
    if len(token) == 2 and token.endswith("*"):
        return DeadKey(token[0])
    if len(token) != 1:
        raise ValueError(f"bad layout table token {token!r}")
    return token


def _layout(
    name: str,
    rows: Iterable[tuple[Sequence[int], str, str]],
    altgr: Mapping[int, str],
    keypad_dot: str,
) -> Layout:
    keys: dict[int, tuple[Symbol | None, Symbol | None, Symbol | None]] = {
        KEY_SPACE: (" ", " ", None)
    }
    for codes, plain, shifted in rows:
        plain_tokens, shifted_tokens = plain.split(), shifted.split()
        if not len(codes) == len(plain_tokens) == len(shifted_tokens):
            raise ValueError(f"{name}: a row's codes and characters do not line up")
        for code, p, s in zip(codes, plain_tokens, shifted_tokens, strict=True):
            keys[code] = (_token(p), _token(s), _token(altgr[code]) if code in altgr else None)
    unused = set(altgr) - set(keys)
    if unused:
        raise ValueError(f"{name}: AltGr characters for keys without a row: {sorted(unused)}")
    keypad = {**_KEYPAD_DIGITS, **_KEYPAD_OPERATORS, KEY_KPDOT: keypad_dot}
    return Layout(name, keys, keypad, has_altgr=bool(altgr))


LAYOUTS: dict[str, Layout] = {
    "us": _layout(
        "us",
        [
            (_DIGIT_ROW, "` 1 2 3 4 5 6 7 8 9 0 - =", "~ ! @ # $ % ^ & * ( ) _ +"),
            (_TOP_ROW, "q w e r t y u i o p [ ]", "Q W E R T Y U I O P { }"),
            (_HOME_ROW, "a s d f g h j k l ; ' \\", 'A S D F G H J K L : " |'),
            (_BOTTOM_ROW, "< z x c v b n m , . /", "> Z X C V B N M < > ?"),
        ],
        altgr={},
        keypad_dot=".",
    ),
    # German QWERTZ (T1): Y and Z swapped, Shift+digits differ, @ \ { [ ] } ~ | need AltGr,
    # circumflex, acute and grave are dead keys.
    "de": _layout(
        "de",
        [
            (_DIGIT_ROW, "^* 1 2 3 4 5 6 7 8 9 0 ß \u00b4*", '° ! " § $ % & / ( ) = ? `*'),
            (_TOP_ROW, "q w e r t z u i o p ü +", "Q W E R T Z U I O P Ü *"),
            (_HOME_ROW, "a s d f g h j k l ö ä #", "A S D F G H J K L Ö Ä '"),
            (_BOTTOM_ROW, "< y x c v b n m , . -", "> Y X C V B N M ; : _"),
        ],
        altgr={
            KEY_2: "²",
            KEY_3: "³",
            KEY_7: "{",
            KEY_8: "[",
            KEY_9: "]",
            KEY_0: "}",
            KEY_MINUS: "\\",
            KEY_Q: "@",
            KEY_E: "€",
            KEY_RIGHTBRACE: "~",
            KEY_102ND: "|",
            KEY_M: "µ",
        },
        keypad_dot=",",
    ),
    # French AZERTY as on Windows (what scanners' "French keyboard" setting targets): digits
    # need Shift, A/Q and Z/W swapped, M right of L; ~ ` ^ ¨ are dead keys (xkb's "fr" makes
    # AltGr+2 and AltGr+7 plain ~ and `, which scanners followed by a space would not expect).
    "fr": _layout(
        "fr",
        [
            (_DIGIT_ROW, "² & é \" ' ( - è _ ç à ) =", "∅ 1 2 3 4 5 6 7 8 9 0 ° +"),
            (_TOP_ROW, "a z e r t y u i o p ^* $", "A Z E R T Y U I O P ¨* £"),
            (_HOME_ROW, "q s d f g h j k l m ù *", "Q S D F G H J K L M % µ"),
            (_BOTTOM_ROW, "< w x c v b n , ; : !", "> W X C V B N ? . / §"),
        ],
        altgr={
            KEY_2: "~*",
            KEY_3: "#",
            KEY_4: "{",
            KEY_5: "[",
            KEY_6: "|",
            KEY_7: "`*",
            KEY_8: "\\",
            KEY_9: "^",
            KEY_0: "@",
            KEY_MINUS: "]",
            KEY_EQUAL: "}",
            KEY_E: "€",
            KEY_RIGHTBRACE: "¤",
        },
        keypad_dot=".",
    ),
}

Terminator = Literal["enter", "tab"]
TERMINATOR_KEYS: dict[str, frozenset[int]] = {
    "enter": frozenset({KEY_ENTER, KEY_KPENTER}),
    "tab": frozenset({KEY_TAB}),
}

_SHIFTS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
_CTRLS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL})
_METAS = frozenset({KEY_LEFTMETA, KEY_RIGHTMETA})
_LOCKS_IGNORED = frozenset({KEY_NUMLOCK, KEY_SCROLLLOCK})
_CONTROL_BASE = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"  # Ctrl+X is ord(X) - 0x40


def get_layout(layout: str | Layout) -> Layout:
    if isinstance(layout, Layout):
        return layout
    try:
        return LAYOUTS[layout]
    except KeyError:
        raise ValueError(
            f"unknown keyboard layout {layout!r}: use one of {', '.join(LAYOUTS)}"
        ) from None


def control_char(layout: Layout, code: int, shifted: bool) -> str | None:
    """The control character Ctrl+``code`` types: through the layout, then the US position."""
    us = LAYOUTS["us"]
    level = SHIFT if shifted else PLAIN
    for candidate in (
        layout.symbol(code, level),
        layout.symbol(code, PLAIN),
        us.symbol(code, level),
        us.symbol(code, PLAIN),
    ):
        if isinstance(candidate, str) and candidate.upper() in _CONTROL_BASE:
            return chr(ord(candidate.upper()) - 0x40)
    return None


def _alt_code_char(digits: str) -> str | None:
    number = int(digits) % 256
    if number < 128:
        return chr(number)
    try:
        return bytes([number]).decode("cp1252" if digits.startswith("0") else "cp437")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined
        return None


# -- decoding ---------------------------------------------------------------------------------


@dataclass
class DecoderStats:
    """Counters of one decoder; mutated in place."""

    presses: int = 0
    codes: int = 0  # completed codes returned by feed()
    empty: int = 0  # terminators with nothing before them
    repeats_ignored: int = 0
    unknown_keys: int = 0
    discarded: int = 0  # codes reported to on_discard
    dropped_events: int = 0  # SYN_DROPPED seen


@dataclass(frozen=True, slots=True)
class DiscardedCode:
    reason: RejectReason
    text: str  # what had been decoded of it (may be a credential: do not log)
    detail: str  # for logs; never contains the text


class KeyDecoder:
    """Key events of one keyboard-wedge scanner in, completed codes out (see module docstring)."""

    def __init__(
        self,
        layout: str | Layout = "us",
        terminator: Terminator = "enter",
        *,
        max_gap_s: float | None = None,
        max_length: int = 4096,
        on_discard: Callable[[DiscardedCode], None] | None = None,
    ) -> None:
        if terminator not in TERMINATOR_KEYS:
            raise ValueError(
                f"unknown terminator {terminator!r}: use one of {', '.join(TERMINATOR_KEYS)}"
            )
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError(f"max_gap_s must be positive or None, not {max_gap_s}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, not {max_length}")
        self.layout = get_layout(layout)
        self.terminator = terminator
        self._terminators = TERMINATOR_KEYS[terminator]
        self._max_gap_s = max_gap_s
        self._max_length = max_length
        self._on_discard = on_discard
        self.stats = DecoderStats()
        # Alt keys: left Alt always; right Alt too where it is not AltGr.
        self._alts = frozenset({KEY_LEFTALT} | (set() if self.layout.has_altgr else {KEY_RIGHTALT}))
        self._held: set[int] = set()
        self._caps = False
        self._resyncing = False  # after SYN_DROPPED, until the next SYN_REPORT
        self._last_press_at: float | None = None
        # The code in progress (see _reset_code).
        self._chars: list[str] = []
        self._dead: DeadKey | None = None
        self._alt_digits = ""
        self._damage: RejectReason | None = None
        self._damage_detail = ""
        self._unknown_codes: list[int] = []

    @property
    def pending(self) -> bool:
        """Whether a code is in progress (something typed, or damage noted, since the last)."""
        return bool(self._chars or self._dead or self._alt_digits or self._damage)

    def feed(self, event_type: int, code: int, value: int, at: float | None = None) -> str | None:
        """Handle one event; returns the text of a code its terminator just completed."""
        if event_type == EV_SYN:
            self._on_syn(code)
            return None
        if event_type != EV_KEY or self._resyncing:
            return None
        if value == KEY_REPEAT:
            self.stats.repeats_ignored += 1
            return None
        if value == KEY_RELEASE:
            self._release(code)
            return None
        if value != KEY_PRESS:
            return None
        return self._press(code, at)

    def reset(self) -> None:
        """Forget the code in progress and all key state (a new device), reporting nothing."""
        self._reset_code()
        self._held.clear()
        self._caps = False
        self._resyncing = False
        self._last_press_at = None

    def discard(self, reason: RejectReason, detail: str) -> bool:
        """Drop the code in progress and all key state; True if there was one to report."""
        had_code = self.pending
        text = "".join(self._chars)
        damage, damage_detail = self._damage, self._damage_detail
        self._reset_code()
        self._held.clear()
        if had_code:
            if damage is not None:  # e.g. dropped events noted earlier: say so, with the cause
                reason, detail = damage, f"{damage_detail}; then {detail}"
            self._report(reason, text, detail)
        return had_code

    # -- events ---------------------------------------------------------------------------

    def _on_syn(self, code: int) -> None:
        if code == SYN_DROPPED:
            self.stats.dropped_events += 1
            self._resyncing = True
            self._held.clear()
            self._dead = None
            self._alt_digits = ""
            self._damage_with(RejectReason.EVENTS_DROPPED, "the kernel dropped input events")
        elif code == SYN_REPORT:
            self._resyncing = False

    def _release(self, code: int) -> None:
        if code not in self._held:
            return  # a key held across the end of a code, or state lost: ignored
        self._held.discard(code)
        if code in self._alts and not (self._held & self._alts) and self._alt_digits:
            digits, self._alt_digits = self._alt_digits, ""
            char = _alt_code_char(digits)
            if char is None:
                self._unknown(code, f"Alt+{digits} has no character")
            else:
                self._type(char)

    def _press(self, code: int, at: float | None) -> str | None:
        if (
            at is not None
            and self._last_press_at is not None
            and self._max_gap_s is not None
            and at - self._last_press_at > self._max_gap_s
        ):
            # Nothing typed that long ago belongs to this key: a partial code is stale, and a
            # key still held since then (a stuck Shift) must not change what comes now.
            gap = at - self._last_press_at
            self.discard(RejectReason.STALE, f"no terminator, next key came {gap:.1f} s later")
        if at is not None:
            self._last_press_at = at
        self.stats.presses += 1
        self._held.add(code)
        if code in _SHIFTS or code in _CTRLS or code in _METAS or code in self._alts:
            return None
        if code == KEY_RIGHTALT or code in _LOCKS_IGNORED:  # AltGr, Num/Scroll Lock
            return None
        if code == KEY_CAPSLOCK:
            self._caps = not self._caps
            return None
        if code in self._terminators:
            return self._finish()
        if self._held & self._alts:
            self._alt_key(code)
        elif self._held & _CTRLS:
            self._ctrl_key(code)
        elif code in self.layout.keypad:
            self._type(self.layout.keypad[code])
        else:
            self._symbol_key(code)
        return None

    def _alt_key(self, code: int) -> None:
        digit = _KEYPAD_DIGITS.get(code)
        if digit is None:
            self._unknown(code, "Alt with a key other than a keypad digit")
        elif len(self._alt_digits) >= 4:
            self._unknown(code, "Alt code longer than 4 digits")
        else:
            self._alt_digits += digit

    def _ctrl_key(self, code: int) -> None:
        char = control_char(self.layout, code, shifted=bool(self._held & _SHIFTS))
        if char is None:
            self._unknown(code, "Ctrl with a key that has no control character")
        else:
            self._type(char)

    def _symbol_key(self, code: int) -> None:
        level = self._level(code)
        symbol = None if level is None else self.layout.symbol(code, level)
        if symbol is None:
            self._unknown(code, f"no character on layout {self.layout.name}")
        elif isinstance(symbol, DeadKey):
            self._dead_key(symbol)
        else:
            self._type(symbol)

    def _level(self, code: int) -> int | None:
        shifted = bool(self._held & _SHIFTS)
        if self._held & {KEY_RIGHTALT} and self.layout.has_altgr:
            return None if shifted else ALTGR  # AltGr+Shift: no layout here defines it
        plain = self.layout.symbol(code, PLAIN)
        if self._caps and isinstance(plain, str) and plain.lower() != plain.upper():
            shifted = not shifted  # Caps Lock flips letters only
        return SHIFT if shifted else PLAIN

    def _dead_key(self, dead: DeadKey) -> None:
        if self._dead is None:
            self._dead = dead
            return
        previous, self._dead = self._dead, None
        self._append(previous.accent)
        if previous != dead:  # two different dead keys: the first stands alone
            self._dead = dead

    def _type(self, char: str) -> None:
        """A character typed by a key: composed with a pending dead key if there is one."""
        dead, self._dead = self._dead, None
        if dead is None:
            self._append(char)
        elif char == " ":
            self._append(dead.accent)
        else:
            combining = _COMBINING.get(dead.accent)
            composed = unicodedata.normalize("NFC", char + combining) if combining else ""
            if len(composed) == 1:
                self._append(composed)
            else:
                self._append(dead.accent)
                self._append(char)

    def _append(self, char: str) -> None:
        if len(self._chars) >= self._max_length:
            self._damage_with(RejectReason.TOO_LONG, f"longer than {self._max_length} characters")
            return
        self._chars.append(char)

    def _unknown(self, code: int, why: str) -> None:
        self.stats.unknown_keys += 1
        self._unknown_codes.append(code)
        codes = ", ".join(str(c) for c in self._unknown_codes)
        self._damage_with(RejectReason.UNKNOWN_KEYS, f"untranslatable keys (codes {codes}): {why}")

    def _damage_with(self, reason: RejectReason, detail: str) -> None:
        # The first damage is the cause; an unknown-key list may grow.
        if self._damage is None or self._damage == reason:
            self._damage, self._damage_detail = reason, detail

    def _finish(self) -> str | None:
        if self._dead is not None:
            self._append(self._dead.accent)
            self._dead = None
        if self._alt_digits:
            self._unknown(KEY_LEFTALT, "Alt code not finished before the terminator")
        text = "".join(self._chars)
        damage, detail = self._damage, self._damage_detail
        self._reset_code()
        self._held.clear()  # nothing held now carries into the next code
        if damage is not None:
            self._report(damage, text, detail)
            return None
        if not text:
            self.stats.empty += 1
            return None
        self.stats.codes += 1
        return text

    def _report(self, reason: RejectReason, text: str, detail: str) -> None:
        self.stats.discarded += 1
        if self._on_discard is not None:
            self._on_discard(DiscardedCode(reason, text, detail))

    def _reset_code(self) -> None:
        self._chars = []
        self._dead = None
        self._alt_digits = ""
        self._damage = None
        self._damage_detail = ""
        self._unknown_codes = []


# -- encoding (the scanner's side, for simulators, tests and demos) --------------------------


def _typing_table(layout: Layout) -> dict[str, tuple[int, int]]:
    """Character -> (key, level) that types it directly, preferring plain, then Shift, AltGr."""
    table: dict[str, tuple[int, int]] = {}
    for level in (PLAIN, SHIFT, ALTGR):
        for code, symbols in layout.keys.items():
            symbol = symbols[level]
            if isinstance(symbol, str):
                table.setdefault(symbol, (code, level))
    for code, char in layout.keypad.items():
        table.setdefault(char, (code, PLAIN))
    return table


def _dead_table(layout: Layout) -> dict[str, tuple[int, int]]:
    table: dict[str, tuple[int, int]] = {}
    for level in (PLAIN, SHIFT, ALTGR):
        for code, symbols in layout.keys.items():
            symbol = symbols[level]
            if isinstance(symbol, DeadKey):
                table.setdefault(symbol.accent, (code, level))
    return table


class _Typist:
    def __init__(self, start: float, interval: float) -> None:
        self.events: list[KeyEvent] = []
        self._at = start
        self._interval = interval

    def event(self, code: int, value: int) -> None:
        self.events.append(KeyEvent(EV_KEY, code, value, round(self._at, 6)))
        self.events.append(KeyEvent(EV_SYN, SYN_REPORT, 0, round(self._at, 6)))
        self._at += self._interval

    def tap(self, code: int, *modifiers: int) -> None:
        for modifier in modifiers:
            self.event(modifier, KEY_PRESS)
        self.event(code, KEY_PRESS)
        self.event(code, KEY_RELEASE)
        for modifier in reversed(modifiers):
            self.event(modifier, KEY_RELEASE)

    def level_tap(self, code: int, level: int) -> None:
        modifiers = {PLAIN: (), SHIFT: (KEY_LEFTSHIFT,), ALTGR: (KEY_RIGHTALT,)}[level]
        self.tap(code, *modifiers)

    def alt_code(self, char: str) -> None:
        number = ord(char)
        digits = str(number) if number < 128 else "0" + str(char.encode("cp1252")[0])
        by_digit = {d: code for code, d in _KEYPAD_DIGITS.items()}
        self.event(KEY_LEFTALT, KEY_PRESS)
        for digit in digits:
            self.tap(by_digit[digit])
        self.event(KEY_LEFTALT, KEY_RELEASE)


def key_events(
    text: str,
    layout: str | Layout = "us",
    terminator: Terminator = "enter",
    *,
    alt_codes: bool = False,
    start: float = 0.0,
    interval: float = 0.002,
) -> list[KeyEvent]:
    """The events a wedge scanner set to ``layout`` sends when it scans ``text``.

    Control characters go as Ctrl+key; characters the layout cannot type directly go through
    its dead keys, else as Alt+keypad codes. ``alt_codes`` types everything as Alt+keypad codes
    (the scanners' "ALT mode"). ValueError for a character there is no way to type.
    """
    lay = get_layout(layout)
    direct, dead = _typing_table(lay), _dead_table(lay)
    typist = _Typist(start, interval)
    for char in text:
        if alt_codes:
            _check_alt_typable(char)
            typist.alt_code(char)
        elif ord(char) < 0x20:
            _type_control(typist, lay, char)
        elif char in direct:
            typist.level_tap(*direct[char])
        elif char in dead:
            typist.level_tap(*dead[char])
            typist.tap(KEY_SPACE)
        elif (composed := _dead_and_base(char, dead, direct)) is not None:
            (dead_code, dead_level), (base_code, base_level) = composed
            typist.level_tap(dead_code, dead_level)
            typist.level_tap(base_code, base_level)
        else:
            _check_alt_typable(char)
            typist.alt_code(char)
    typist.tap(KEY_ENTER if terminator == "enter" else KEY_TAB)
    return typist.events


def _type_control(typist: _Typist, layout: Layout, char: str) -> None:
    for shifted in (False, True):
        for code in layout.keys:
            if control_char(layout, code, shifted) == char:
                typist.tap(code, KEY_LEFTCTRL, *((KEY_LEFTSHIFT,) if shifted else ()))
                return
    raise ValueError(f"no Ctrl+key types {char!r} on layout {layout.name}")


def _check_alt_typable(char: str) -> None:
    if ord(char) < 128:
        return
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        raise ValueError(f"{char!r} cannot be typed on a keyboard wedge") from None


def _dead_and_base(
    char: str, dead: Mapping[str, tuple[int, int]], direct: Mapping[str, tuple[int, int]]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    decomposed = unicodedata.normalize("NFD", char)
    if len(decomposed) != 2:
        return None
    base, mark = decomposed[0], decomposed[1]
    for accent, combining in _COMBINING.items():
        if combining == mark and accent in dead and base in direct:
            return dead[accent], direct[base]
    return None
