"""One OCR word in one frame, and the bib number it may be.

OCR reads a bib's digits as look-alike letters ("4I72", "S0I2") and picks up punctuation at the
edges ("1042."), so a word is mapped to a digit string before any tracking or voting. Words that
are times or clocks ("00:41:27", "3.5") or mostly letters ("KM") are not numbers of a runner.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Letters (and two symbols) OCR commonly returns for a digit printed in a bib font.
OCR_DIGIT_CONFUSIONS = {
    "O": "0",
    "D": "0",
    "Q": "0",
    "I": "1",
    "L": "1",
    "|": "1",
    "!": "1",
    "Z": "2",
    "S": "5",
    "G": "6",
    "T": "7",
    "B": "8",
}
MIN_DIGITS = 2
MAX_DIGITS = 6


@dataclass(frozen=True)
class Read:
    """One WORD detection in one frame (box normalised 0-1 to the frame, like Rekognition's)."""

    frame_index: int
    timestamp_ms: int
    text: str
    confidence: float
    left: float
    top: float
    width: float
    height: float
    frame_uri: str = ""


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS" or char.isspace()


def number_candidate(text: str) -> str | None:
    """The digit string a word stands for, or None when it is not plausibly a bib number.

    At least half of the (stripped) characters must already be digits, so a word such as "SOLO"
    or "BIB" never turns into a number through the confusion map.
    """
    word = unicodedata.normalize("NFKC", text or "")
    start, end = 0, len(word)
    while start < end and _is_punctuation(word[start]):
        start += 1
    while end > start and _is_punctuation(word[end - 1]):
        end -= 1
    word = word[start:end].upper()
    if not word or ":" in word or "." in word:
        return None
    digits = []
    for char in word:
        if char.isdecimal() and char.isascii():
            digits.append(char)
        elif char in OCR_DIGIT_CONFUSIONS:
            digits.append(OCR_DIGIT_CONFUSIONS[char])
        else:
            return None
    already_digits = sum(char.isdecimal() and char.isascii() for char in word)
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS or 2 * already_digits < len(word):
        return None
    return "".join(digits)
