"""Hypothesis strategies for hostile platform input: nasty text, junk JSON values and mutated payloads.

Valid payloads come from the fakes' own builders (tests/slack_fakes.py, tests/discord_fakes.py), so a
mutation starts from what the platform really sends; `mutated` then drops, retypes, truncates or adds
fields anywhere in it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

#: One megabyte of text: what a hostile client can put in a message field.
MEGABYTE = 1_000_000

#: Characters that break naive code: NUL and other controls, lone surrogates, bidi overrides and isolates,
#: zero-width and invisible characters, a BOM, combining marks, ZWJ emoji, line and paragraph separators.
NASTY_CHARS = (
    "\x00",
    "\x01",
    "\x07",
    "\x08",
    "\x1b",
    "\x7f",
    "\x85",
    "\x9b",
    "\r",
    "\t",
    "\ud800",
    "\udfff",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffd",
    "\u0301",
    "🚩",
    "\U0010ffff",
)
#: Sequences of several code points: a reversed surrogate pair, stacked combining marks, a ZWJ emoji.
NASTY_SEQUENCES = ("\udc00\ud800", "\ud83d\ude00", "\u0301\u0301\u0301", "👩\u200d👩\u200d👧\u200d👦", "\r\n")

#: Whole strings worth trying as they are.
NASTY_STRINGS = (
    "",
    " ",
    "\n\n\t ",
    "\u202etxt.exe",
    "\u202eHow much is tuition?",
    "fr\u200bob\u200bni\u200bcate",
    "<!everyone> <!channel> <@UBOT> <#C1|x> <https://evil.test|click>",
    "@everyone @here <@&1> <@!1>",
    "&amp;&lt;&gt;<<<>>>",
    "😀" * 100,
    "Z\u0351\u0360\u0361" * 200,
    "'; DROP TABLE bot_answer; --",
    "%s %d {0} {text}",
    "\x1b[2J\x1b[31mred",
    "line\r\nbreak\rcarriage",
    "${jndi:ldap://x}",
)

any_char = st.characters(exclude_categories=())
_pieces = st.one_of(any_char, st.sampled_from(NASTY_CHARS), st.sampled_from(NASTY_SEQUENCES))
#: Any text at all, lone surrogates included, with the nasty characters mixed in often.
wild_text = st.lists(_pieces, max_size=40).map("".join)


@st.composite
def big_text(draw: st.DrawFn) -> str:
    """About a megabyte, built by repetition (drawing a megabyte character by character is far too slow)."""
    unit = draw(st.lists(_pieces, min_size=1, max_size=8).map("".join))
    return (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]


def hostile_text(*, big: bool = True) -> st.SearchStrategy[str]:
    """Text a hostile member could send: wild, nasty, huge, or ordinary words wrapped in nasty characters."""
    options = [
        wild_text,
        st.sampled_from(NASTY_STRINGS),
        st.builds(lambda a, b, c: a + b + c, st.sampled_from(NASTY_CHARS), st.sampled_from(NASTY_STRINGS), wild_text),
    ]
    if big:
        options.append(big_text())
    return st.one_of(*options)


def deeply_nested(depth: int, leaf: object = "x") -> Any:
    """`depth` levels of lists and objects around `leaf` (built iteratively: no recursion limit)."""
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"elements": value, "type": "rich_text_section"}
    return value


#: Values of the wrong type for any field: nothing, booleans, huge and odd numbers, text, containers.
scalar_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    wild_text,
)
junk = st.recursive(
    scalar_junk,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
) | st.integers(min_value=50, max_value=400).map(deeply_nested)

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a field or element in a JSON-like value."""
    out: list[Path] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            out.append((*prefix, key))
            out.extend(paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out.append((*prefix, i))
            out.extend(paths(inner, (*prefix, i)))
    return out


def _parent(root: Any, path: Path) -> Any:
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


def _mutate(root: Any, kind: str, path: Path, value: Any) -> None:
    parent = _parent(root, path)
    key = path[-1]
    if kind == "add":
        if isinstance(parent, dict):
            parent[key] = value
    elif kind == "drop":
        del parent[key]
    elif kind == "set":
        parent[key] = value
    elif kind == "truncate":
        old = parent[key]
        parent[key] = old[: len(old) // 2] if isinstance(old, str | list) else old
    elif kind == "wrap":
        parent[key] = [parent[key]]


@st.composite
def mutated(draw: st.DrawFn, base: Callable[[], Any] | st.SearchStrategy[Any], extra: Sequence[Path] = ()) -> Any:
    """A payload from `base` (a builder or a strategy) after one to three mutations anywhere in it: a field
    dropped, set to junk or hostile text, truncated or wrapped in a list, or an optional field (`extra`) added."""
    payload = copy.deepcopy(draw(base) if isinstance(base, st.SearchStrategy) else base())
    for _ in range(draw(st.integers(1, 3))):
        existing = paths(payload)
        kinds = (["set", "set", "drop", "truncate", "wrap"] if existing else []) + (["add"] if extra else [])
        if not kinds:
            break
        kind = draw(st.sampled_from(kinds))
        path = draw(st.sampled_from(list(extra) if kind == "add" else existing))
        value = draw(st.one_of(junk, hostile_text())) if kind in ("set", "add") else None
        try:
            _mutate(payload, kind, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an optional field's parent was already dropped or retyped
    return payload


#: Ids as platforms make them (Slack `U…`/`C…`, Discord snowflakes), plus ones no platform makes.
slack_ids = st.from_regex(r"[UCDGWT][A-Z0-9]{2,11}", fullmatch=True)
slack_ts = st.builds(lambda s, u: f"{s}.{u:06d}", st.integers(1_000_000_000, 2_000_000_000), st.integers(0, 999_999))
snowflakes = st.integers(10**16, 2**63 - 1).map(str)
#: Ids no platform makes: empty, longer than the id columns, or with a space, control or invisible character.
hostile_ids = st.one_of(
    st.just(""),
    st.text(min_size=129, max_size=300),
    st.builds(
        lambda a, b, c: a + b + c,
        st.text(max_size=5),
        st.sampled_from([c for c in (*NASTY_CHARS, " ") if not c.isprintable() or c == " "]),
        st.text(max_size=5),
    ),
    st.just("x" * MEGABYTE),
)
#: Case ids as a button or command could carry them: real, unknown, zero, negative, huge, not numbers.
hostile_case_ids = st.one_of(
    st.integers(1, 50).map(str),
    st.sampled_from(
        ["0", "-1", "2147483648", "99999999999", "9" * 18, "9" * 5000, "²", "١٢", "1e3", "0x1f", " 1", "1 "]
    ),
    wild_text,
)
