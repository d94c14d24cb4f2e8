"""Numbers as people say them to a device: digits ("30", "30%"), English words ("thirty five",
"a hundred") and Chinese numerals ("三十五", "两", "一百"). Only whole numbers from 0 to 9999:
volumes, brightness, minutes and clock times need nothing else."""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "no": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
NUMBER_WORDS = frozenset([*_UNITS, *_TENS, "hundred", "thousand", "and"])

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_ZH_SCALES = {"十": 10, "百": 100, "千": 1000}
ZH_NUMERAL = "[零〇一二两三四五六七八九十百千0-9０-９]+"


def english_number(words: list[str]) -> int | None:
    """The value of number words ("thirty", "five" → 35; "a hundred" → 100), or None when
    they are not one number ("five five", "and")."""
    if not words or words[-1] == "and" or words[0] == "and":
        return None
    total, current, last = 0, 0, ""
    for word in words:
        if word in ("a", "an", "no") and len(words) == 1:
            return None  # "a" alone is an article, not one
        if word in _UNITS:
            if last in _UNITS or (current % 10 and last in _TENS):
                return None
            current += _UNITS[word]
        elif word in _TENS:
            if current % 100:
                return None
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total, current = total + (current or 1) * 1000, 0
        elif word != "and":
            return None
        last = word
    return total + current


def chinese_number(text: str) -> int | None:
    """The value of a Chinese numeral ("三十五" → 35, "十" → 10, "两百" → 200, "一百零五" → 105)
    or of digits (full-width too); None for anything else ("一二三", digits mixed in)."""
    text = text.translate(_FULL_WIDTH)
    if text.isascii():
        return int(text) if text.isdigit() else None
    total, current = 0, None
    for ch in text:
        if ch in ("零", "〇"):
            current = None  # a place skipped: "一百零五"
        elif ch in _ZH_DIGITS:
            if current is not None:
                return None  # two digits in a row: read one by one, not one number
            current = _ZH_DIGITS[ch]
        elif ch in _ZH_SCALES:
            total += (1 if current is None else current) * _ZH_SCALES[ch]
            current = None
        else:
            return None
    return total + (current or 0)


_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_DIGITS = re.compile(r"^\d{1,4}%?$")


def number_token(token: str) -> int | None:
    """One token that is a number by itself: "30", "30%"."""
    if _DIGITS.match(token):
        return int(token.rstrip("%"))
    return None
