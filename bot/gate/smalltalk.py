"""Small talk: a message that only greets, thanks, says goodbye, acknowledges, or asks what the bot is for.

"hi", "thanks so much!", "ok cool", "what can you help me with?" are the first and last things people type to a
bot. They carry no question for the scope, so the topic classifier refuses them, and the harm screens, which
were never shown such text, read some as jailbreaks ("what can you help me with?" is close to "what can you do
without restrictions?") or as fraud ("ok"). A newcomer greeted with "I can't help with that" learns nothing
about what the bot is for. Such a message is recognised here by its whole text, from a closed list of phrases,
so nothing else can ride along ("hi, how do I pick a lock" is not small talk), and answered with the scope's
introduction (`introduction`) instead of its refusal line.
"""

from __future__ import annotations

import re
from typing import Literal

from bot.config import ScopeConfig
from bot.gate import rule_detail

#: `GateResult.rule` of small talk is this, a colon and its `Kind`.
SMALL_TALK_RULE = "topic:small-talk"
Kind = Literal["greeting", "thanks", "goodbye", "acknowledgement", "about-the-bot"]


def small_talk_kind(rule: str) -> str | None:
    """The `Kind` a `GateResult.rule` of small talk records, or None when the rule is not small talk's."""
    return rule_detail(rule, SMALL_TALK_RULE)


_PHRASES: tuple[tuple[Kind, str], ...] = (
    (
        "greeting",
        r"(?:hi|hii+|hello|hello+|hey+|heya|hiya|howdy|yo|greetings|hola|bonjour|ola|sup|wassup|whats\s+up|what'?s\s+up"
        r"|good\s+(?:morning|afternoon|evening|day)|morning|afternoon|evening|how\s+are\s+you(?:\s+doing)?(?:\s+today)?"
        r"|how'?s\s+it\s+going|hope\s+you'?re\s+well|nice\s+to\s+meet\s+you)",
    ),
    (
        "thanks",
        r"(?:thanks|thank\s+you|thank\s+u|thx|thnx|tnx|ty|tysm|tyvm|cheers|much\s+appreciated|appreciate\s+it"
        r"|i\s+appreciate\s+it|that\s+helps|that\s+helped|that'?s\s+helpful|very\s+helpful|helpful|you'?re\s+the\s+best"
        r"|you\s+rock|great\s+help)(?:\s+(?:so|very)\s+much|\s+a\s+(?:lot|ton|bunch)|\s+again|\s+anyway)*",
    ),
    (
        "goodbye",
        r"(?:bye|bye\s+bye|goodbye|good\s+bye|see\s+(?:you|ya|u)(?:\s+later|\s+soon)?|later|cya|good\s+night|goodnight"
        r"|have\s+a\s+(?:good|great|nice)\s+(?:one|day|night|evening|weekend)|take\s+care|talk\s+(?:to\s+you\s+)?later"
        r"|that'?s\s+(?:all|it)|thats\s+(?:all|it)|that\s+is\s+(?:all|it)|nothing\s+else)",
    ),
    (
        "acknowledgement",
        # Longer phrases first: the first alternative that matches is taken ("no worries" is not "no" and a word).
        r"(?:no\s+worries|no\s+problem|no\s+way|sure\s+thing"
        r"|ok|okay|okey|k|kk|okie|alright|all\s+right|sure|cool|great|nice|awesome|perfect|good|fine|neat|sweet"
        r"|got\s+it|gotcha|understood|i\s+see|makes\s+sense|sounds\s+good|will\s+do|noted|yes|yeah|yep|yup|no|nope|nah"
        r"|lol|lmao|haha+|hehe+|wow|oh|ah|hmm+|uh|um|oops|ok\s+then|fair\s+enough|np"
        # Chat reactions: "whatever dude", "bruh", "my bad", "nvm".
        r"|whatever|bruh+|same|true|facts|bet|fr|ikr|omg|omfg|oh\s+well|for\s+real|right|exactly|ugh+|meh|idk"
        r"|my\s+bad|sorry|oh\s+no|yikes|nvm|never\s+mind|nevermind)",
    ),
    (
        "about-the-bot",
        r"(?:help|help\s+me|can\s+you\s+help(?:\s+me)?|could\s+you\s+help(?:\s+me)?|i\s+(?:have|got)\s+a\s+question"
        r"|i\s+need\s+(?:some\s+)?help|quick\s+question|question|"
        r"(?:who|what)\s+are\s+(?:you|u)|are\s+(?:you|u)\s+(?:a\s+)?(?:bot|robot|human|real|real\s+person|person|ai|an\s+ai)"
        r"|what\s+(?:can|do|could)\s+(?:you|u)\s+(?:do|help\s+(?:me\s+)?with|help\s+with|answer|tell\s+me\s+about)"
        r"|what\s+do\s+(?:you|u)\s+know|what\s+can\s+i\s+ask(?:\s+(?:you|u|about))?"
        r"|what\s+(?:kind|kinds|sort|sorts|type|types)\s+of\s+(?:questions|things|stuff)\s+(?:can|do|should)\s+(?:i|we)"
        r"\s+ask(?:\s+(?:you|u|about))?|what\s+(?:is|are)\s+(?:you|this|this\s+bot|this\s+channel)\s+for"
        r"|what\s+do\s+(?:you|u)\s+do|how\s+do\s+(?:you|u|i)\s+(?:work|use\s+(?:you|this|this\s+bot))"
        r"|how\s+does\s+this\s+(?:bot\s+)?work|what\s+(?:can|does)\s+(?:this|the)\s+bot\s+do|how\s+can\s+(?:you|u)\s+help(?:\s+me)?"
        r"|what\s+are\s+(?:you|u)\s+able\s+to\s+do|what\s+is\s+this)",
    ),
)
_KINDS: dict[str, Kind] = {f"k{i}": kind for i, (kind, _) in enumerate(_PHRASES)}
#: One phrase, ending where a word ends: "ok" is not the start of "okra", nor "yo" of "you rock".
_UNIT = re.compile("|".join(f"(?P<k{i}>{p})(?![\\w'])" for i, (_, p) in enumerate(_PHRASES)))
_FILLER = frozenset(
    re.findall(r"\S+", "scopebot bot there everyone everybody all folks guys yall y'all friend again and then")
    + re.findall(r"\S+", "dude bro man mate")
    + re.findall(r"\S+", "so just oh well please pls plz very much lot a for that")
)
_SEPARATOR = re.compile(r"[\s,.;:!?…\-–—()\"*_~]+")
_LETTER_OR_DIGIT = re.compile(r"\w")
#: Emoji that say something on their own; any other message of only emoji and punctuation acknowledges.
_EMOJI: tuple[tuple[str, Kind], ...] = (
    ("👋", "greeting"),
    ("🙏", "thanks"),
    ("❓", "about-the-bot"),
    ("❔", "about-the-bot"),
)
#: A message this long is more than small talk.
MAX_WORDS = 16
_RANK: tuple[Kind, ...] = ("about-the-bot", "greeting", "goodbye", "thanks", "acknowledgement")


def small_talk(clean: str) -> Kind | None:
    """What a normalized message (`clean_text`) is, when all of it is small talk; None otherwise.

    Emoji are ignored beside words; a message of only emoji and punctuation is small talk too (👋 greets, 🙏
    thanks); so is a mention ("@scopebot"). Questions about the bot and greetings outrank goodbyes and thanks
    ("hi, thanks" greets; "thanks, bye" says goodbye), which outrank acknowledgements ("ok thanks" thanks)."""
    lowered = clean.lower().strip()
    if not lowered:
        return None
    if not _LETTER_OR_DIGIT.search(lowered):
        return next((kind for mark, kind in _EMOJI if mark in lowered), "acknowledgement")
    words = [w for w in _SEPARATOR.sub(" ", lowered).split() if _LETTER_OR_DIGIT.search(w)]
    if len(words) > MAX_WORDS:
        return None
    text = " ".join(w.strip("'") for w in words)
    kinds: set[Kind] = set()
    pos = 0
    while pos < len(text):
        if text[pos] == " ":
            pos += 1
            continue
        match = _UNIT.match(text, pos)
        if match is None:
            word = text[pos:].split(" ", 1)[0]
            if word not in _FILLER and not word.startswith("@"):
                return None
            pos += len(word)
            continue
        kinds.add(_KINDS[next(k for k, v in match.groupdict().items() if v is not None)])
        pos = match.end()
    return next((kind for kind in _RANK if kind in kinds), None)


_INTRO = re.compile(r"^(?:answers|handles|helps\s+with|covers)\s+(?:\w+\s+)?questions\s+", re.I)


def introduction(scope: ScopeConfig) -> str:
    """What the bot says to "what can you do?" (or the scope's `greeting`): what it answers, from the description
    ("Answers questions about Northgate College: admissions …" gives "I answer questions about Northgate College:
    admissions …"), and the first example question."""
    if scope.greeting:
        return scope.greeting
    description = scope.description.strip().rstrip(".")
    about = _INTRO.sub("", description)
    line = f"I answer questions {about}." if about != description else f"I can help with this: {description}."
    if scope.examples:
        line += f" For example: “{scope.examples[0]}”"
    return line


def small_talk_reply(scope: ScopeConfig, kind: str) -> str:
    """The reply to small talk of this `Kind`: the introduction, or a short line that points back to it."""
    if kind == "thanks":
        return "You're welcome! Ask me anything else you need to know."
    if kind == "goodbye":
        return "Bye! Come back any time you have a question."
    if kind == "acknowledgement":
        return "Anything else? Just ask."
    if kind == "greeting" and not scope.greeting:
        return f"Hi! {introduction(scope)}"
    return introduction(scope)
