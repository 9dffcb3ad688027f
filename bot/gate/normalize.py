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
    # Capitals, mapped before lower-casing (Greek Μ is an M, its lower case μ looks like a u)
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H",
    "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip
#: Non-Latin letters that have a Latin twin; a word made only of these (and Latin letters) is mapped.
_CONFUSABLE = frozenset(c for c in _HOMOGLYPHS if not c.isascii())

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
#: Three or more single characters joined by one and the same separator: `b o m b`, `b.o.m.b`, `b_o_m_b`.
_SPACED = re.compile(r"(?<![^\W_]|')[^\W_]([ .\-_*/|,~+])(?:[^\W_]\1){1,}[^\W_](?![^\W_])")
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
    #: Words rebuilt from spaced-out letters; `p l a n t a b o m b` loses its word gaps, so rules
    #: look for strong terms inside these.
    joined: tuple[str, ...] = ()
    #: `clean` with its case kept (capitals tell a name from a word: "at Vail"); `clean` is this lower-cased.
    cased: str = ""


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


def _map_word(word: str, *, latin_text: bool) -> str:
    """Map look-alike letters to Latin in a word of Latin letters and look-alikes only.

    A word made only of look-alikes (Russian "как") is mapped only inside a mostly Latin text.
    """
    if not any(c in _CONFUSABLE for c in word):
        return word
    if not all(c in _CONFUSABLE or c.isascii() for c in word):
        return word
    if not latin_text and not any(c.isascii() and c.isalpha() for c in word):
        return word
    return "".join(_HOMOGLYPHS.get(c, c) for c in word)


def clean_text(text: str, *, keep_case: bool = False) -> str:
    """NFKC, invisible characters removed, look-alike letters mapped, lower-cased (unless `keep_case`: capitals
    tell a name from a word), whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    # Decompose so accents become separate combining marks, which `_visible` drops (é → e).
    text = unicodedata.normalize("NFKD", text)
    text = unicodedata.normalize("NFC", _strip_invisible(text))
    letters = [c for c in text if c.isalpha()]
    foreign = [c for c in letters if not c.isascii()]
    # Mostly Latin, or written only in look-alikes: a disguise, not Russian or Greek.
    latin = len(foreign) <= len(letters) / 2 or all(c in _CONFUSABLE for c in foreign)
    words = [_map_word(w, latin_text=latin) for w in text.split()]
    joined = " ".join(words)
    return _SPACES.sub(" ", joined if keep_case else joined.lower()).strip()


def _unleet(word: str, *, aggressive: bool = False) -> str:
    # Trailing "!" and "|" are punctuation ("FR0BN1CATE!"), not letters.
    stripped = word.rstrip("!|")
    if stripped != word:
        return _unleet(stripped, aggressive=aggressive) + word[len(stripped) :] if stripped else word
    core = word.strip("!|$+@")
    if word.isalpha():
        return word
    if not aggressive:
        if not any(c.isalpha() for c in core) or (sum(c.isalpha() for c in word) < 2 and len(word) < 4):
            return word
    elif word.isdigit() and len(word) > 3:
        return word
    # `11` is nearly always `ll` (ki11, ski11s); a lone `1` is usually `i` (h1, 1nstructions).
    return "".join(_LEET.get(c, c) for c in word.replace("11", "ll"))


def _words_only(text: str) -> str:
    """Letters, digits and marks of any script; everything else becomes a space."""
    return "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text.replace("'", ""))


_ANY_TOKEN = re.compile(rf"[\w{_LEET_CHARS}]+")


def fold_text(clean: str) -> tuple[str, bool, tuple[str, ...]]:
    """The rules' view of an already `clean` text, whether it undid a disguise, and the words it joined."""
    joined: list[str] = []
    disguised_words = 0

    def unspace(m: re.Match[str]) -> str:
        word = m.group(0).replace(m.group(1), "")
        if sum(c.isalpha() for c in word) < 2:
            return m.group(0)
        joined.append(_RUN.sub(r"\1", "".join(_LEET.get(c, c) for c in word)))
        return word

    def unleet(m: re.Match[str]) -> str:
        nonlocal disguised_words
        word = m.group(0)
        out = _unleet(word)
        if out != word and not _UNIT_WORD.match(word.strip("$!")):
            disguised_words += 1
        return out

    text = _SPACED.sub(unspace, clean)
    folded = _LEET_WORD.sub(unleet, text)
    if disguised_words >= 2:
        # A text written in leetspeak: short tokens and bare digits are letters too ("7o", "4 80m8").
        folded = _ANY_TOKEN.sub(lambda m: _unleet(m.group(0), aggressive=True), folded)
    folded = _RUN.sub(r"\1", folded)
    disguised = bool(joined) or disguised_words > 0
    return _SPACES.sub(" ", _words_only(folded)).strip(), disguised, tuple(joined)


def normalize(text: str) -> Normalized:
    """Both views of `text` (and the clean one with its case kept)."""
    cased = clean_text(text, keep_case=True)
    clean = cased.lower()
    folded, disguised, joined = fold_text(clean)
    return Normalized(text, clean, folded, disguised, joined, cased)
