"""One normalizer for every rule and classifier, on prompts and answers alike.

`normalize()` returns two views of a text besides the original:

- `clean`: NFKC, invisible and format characters removed, look-alike letters mapped to Latin, lower-cased,
  whitespace collapsed. This is what the embedding model reads: it keeps digits and punctuation intact,
  so "29 inch tubes" or "10am" mean what they meant.
- `folded`: `clean` plus leetspeak folded inside words (`b0mb` → `bomb`), spacing tricks collapsed
  (`b o m b`, `b.o.m.b` → `bomb`), long letter runs shortened and punctuation turned into spaces. Word
  lists and rules match on this view, so one entry catches every disguise.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Cyrillic and Greek letters that look like Latin ones (lower case; NFKC and lower() run first).
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "һ": "h",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b", "ѵ": "v", "ү": "y", "ɩ": "i",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "ς": "c", "σ": "o", "γ": "y", "μ": "u", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes outside ASCII
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ß": "ss", "æ": "ae", "œ": "oe", "ƅ": "b",
}  # fmt: skip
#: Non-Latin letters that have a Latin twin; a word made only of these (and Latin letters) is mapped.
_CONFUSABLE = frozenset(_HOMOGLYPHS)

_LEET = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "6": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l", "¡": "i",
}  # fmt: skip
_LEET_CHARS = "".join(re.escape(c) for c in _LEET)
#: A word that mixes letters with leet characters, e.g. `h4ck`, `m3th`, `k!ll`, `@ss`.
_LEET_WORD = re.compile(rf"(?<![\w{_LEET_CHARS}])[\w{_LEET_CHARS}]*[a-z][\w{_LEET_CHARS}]*(?![\w{_LEET_CHARS}])")
#: Numbers with units or ordinals (`10am`, `3rd`, `29er`, `mp3`, `700x28c`): folded like any word, since
#: no rule names them, but not a sign of disguise.
_UNIT_WORD = re.compile(r"^(\d+[a-z]{1,3}|[a-z]{1,2}\d|\d+[a-z]\d+[a-z]?)$")
#: Three or more single characters joined by one separator: `b o m b`, `b.o.m.b`, `b-o-m-b`, `b_o_m_b`.
_SPACED = re.compile(r"(?<![^\W_]|')(?:[^\W_][ .\-_*/|,~+]){2,}[^\W_](?![^\W_])")
_RUN = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text with its views for models (`clean`) and for rules (`folded`)."""

    original: str
    clean: str
    folded: str
    #: Whether folding undid a disguise (leetspeak inside words, spaced-out letters).
    disguised: bool = False


def _strip_invisible(text: str) -> str:
    """Drop format (zero-width, bidi), control, private-use and unassigned characters, and the
    combining marks on Latin letters (accents, strike-through overlays); marks on other scripts stay."""
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cf", "Co", "Cn") or (cat == "Cc" and ch not in "\t\n\r"):
            continue
        if cat in ("Mn", "Me") and (not out or out[-1].isascii()):
            continue
        out.append(ch)
    return "".join(out)


def _map_word(word: str) -> str:
    """Map look-alike letters to Latin when the word is written in Latin letters or look-alikes only."""
    if not any(c in _CONFUSABLE for c in word):
        return word
    if all(c in _CONFUSABLE or c.isascii() for c in word):
        return "".join(_HOMOGLYPHS.get(c, c) for c in word)
    return word


def clean_text(text: str) -> str:
    """NFKC, invisible characters removed, look-alike letters mapped, lower-cased, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    # Decompose so accents become separate combining marks, which `_visible` drops (é → e).
    text = unicodedata.normalize("NFKD", text)
    text = _strip_invisible(text).lower()
    text = unicodedata.normalize("NFC", text)
    words = [_map_word(w) for w in text.split()]
    return _SPACES.sub(" ", " ".join(words)).strip()


def _unleet(word: str) -> str:
    core = word.strip("!|$+@")
    if word.isalpha() or not any(c.isalpha() for c in core):
        return word
    if sum(c.isalpha() for c in word) < 2 and len(word) < 4:
        return word
    # `11` is nearly always `ll` (ki11, ski11s); a lone `1` is usually `i` (h1, 1nstructions).
    return "".join(_LEET.get(c, c) for c in word.replace("11", "ll"))


def _words_only(text: str) -> str:
    """Letters, digits and marks of any script; everything else becomes a space."""
    return "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text.replace("'", ""))


def fold_text(clean: str) -> tuple[str, bool]:
    """The rules' view of an already `clean` text, and whether it undid a disguise."""
    disguised = False

    def unspace(m: re.Match[str]) -> str:
        nonlocal disguised
        joined = re.sub(r"[ .\-_*/|,~+]", "", m.group(0))
        if sum(c.isalpha() for c in joined) < 2:
            return m.group(0)
        disguised = True
        return joined

    def unleet(m: re.Match[str]) -> str:
        nonlocal disguised
        word = m.group(0)
        out = _unleet(word)
        disguised = disguised or (out != word and not _UNIT_WORD.match(word.strip("$!")))
        return out

    text = _SPACED.sub(unspace, clean)
    text = _LEET_WORD.sub(unleet, text)
    text = _RUN.sub(r"\1", text)
    return _SPACES.sub(" ", _words_only(text)).strip(), disguised


def normalize(text: str) -> Normalized:
    """Both views of `text`."""
    clean = clean_text(text)
    folded, disguised = fold_text(clean)
    return Normalized(text, clean, folded, disguised)
