"""What a question asks for, before what it is about: creative work, general knowledge, another place, plain
service.

The screens the gate runs before the topic classifier, in its order:
- `creative_request`: poems, songs, stories, jokes, refused whatever their subject (below);
- `asks_general_knowledge`: inventions, world records, history about the subject, refused;
- `asks_about_a_career`: how to work in the field ("how do I get a job as a museum curator"), refused;
- `other_place`: the opening hours of a place that is not the scope's ("What time does Costco close?"),
  refused, where the classifier would see only an hours question like the scope's own;
- `named_place`: any question about another organisation named by the words before a kind of place
  ("tickets to the Bronx Zoo"), refused;
- `service_question`: what anyone asks the organisation it is talking to ("is there parking?"), answered, unless
  it asks for general advice (`asks_for_general_advice`: "how much should I tip housekeeping?").

A scoped bot answers questions about its use case. "Write a poem about my dog" shares the vet clinic's
subject but not its purpose, and the topic classifier, which measures what a question is *about*, cannot
tell the two apart. This screen looks at what the question *asks for* and refuses creative writing and
jokes whatever their subject. A scope that is about creative writing sets `creative = true`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.knowledge import terms

_POLITE = r"(?:(?:please|pls|hey|hi|ok|okay|now)\s+)*"
_ASK = (
    r"(?:(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?|i\s+(?:want|need|would\s+like)\s+(?:you\s+to\s+)?|"
    r"help\s+me\s+|let'?s\s+|i\s+dare\s+you\s+to\s+)?"
)
_VERB = r"(?:write|compose|make\s+up|come\s+up\s+with|create|generate|draft|give|tell|sing|rap|recite|invent|pen)"
_FORM = (
    r"(?:poems?|poetry|songs?|lyrics|story|stories|fairy\s*tales?|jokes?|puns?|limericks?|haikus?|sonnets?|"
    r"raps?|verses?|ballads?|riddles?|odes?|fan\s*fic(?:tion)?|screenplays?|scripts?\s+for\s+a\s+(?:play|movie|skit)|"
    r"knock\s+knock\s+jokes?|pick\s*-?\s*up\s+lines?|roasts?|one\s*-?\s*liners?|"
    r"essays?|speech(?:es)?|blog\s+posts?|cover\s+letters?|slogans?|tweets?)"
)
_FILLER = r"(?:(?:me|us|him|her|them|a|an|one|some|another|my|few|couple|of|short|shorter|little|quick|funny|silly|"
_FILLER += r"cute|sad|nice|good|great|new|original|rhyming|dad|two|three|\d+|line|word|page|argumentative|"
_FILLER += r"persuasive|-)\s+)*"

#: A form named as an event or a thing on a shelf ("story time", "poetry books") is not a request for one.
_NOT_WORK = r"(?!\s+(?:time|times|hour|hours|book|books|reading|readings|night|nights|club|contest|section|slam))"
#: A word or two of subject before the form: "a birthday poem", "some funny roommate jokes" (not "about the …").
_SUBJECT = r"(?:(?!about\b|the\b|of\b|on\b|your\b|our\b|their\b|which\b|what\b|any\b)[a-z0-9'-]+\s+){0,2}"
CREATIVE = re.compile(
    rf"(?:^|\b(?:and|then|also|but|so)\s+){_POLITE}{_ASK}{_VERB}\s+{_FILLER}{_SUBJECT}{_FORM}\b{_NOT_WORK}"
)
#: "a poem about cats", "joke about plumbers, please": the form named first with its subject.
CREATIVE_BARE = re.compile(rf"^{_POLITE}(?:a|an|one|some)\s+{_FILLER}{_FORM}{_NOT_WORK}\s+(?:about|on|for|of)\b")
#: "Do you know any jokes about vets?", "what's a good joke about cats"
CREATIVE_QUESTION = re.compile(
    rf"^(?:do|does)\s+(?:you|u|anyone)\s+know\s+(?:any|a|some)\s+{_FILLER}{_FORM}\b{_NOT_WORK}"
    rf"|^(?:what'?s|what\s+is|got)\s+(?:a|an|any|your)\s+(?:good\s+|funny\s+|best\s+|favorite\s+|favourite\s+)?"
    rf"{_FORM}\b{_NOT_WORK}"
)


def creative_request(folded: str) -> str | None:
    """What kind of creative work `folded` (the normalizer's folded text) asks for, or None."""
    for pattern in (CREATIVE, CREATIVE_BARE, CREATIVE_QUESTION):
        match = pattern.search(folded)
        if match is not None:
            form = re.search(_FORM, match.group(0))
            return re.sub(r"\s+", " ", form.group(0)) if form else "creative writing"
    return None


#: General knowledge: inventions and discoveries, world records, history. "Who invented the first vaccine?"
#: shares a clinic's subject, not its business; the scope's own history ("when was the library built?",
#: "what's the history of the zoo?") is not matched.
GENERAL_KNOWLEDGE = re.compile(
    r"\bwho\s+(?:first\s+)?(?:invented|discovered)\b"
    r"|\b(?:first|oldest|biggest|largest|best|smallest|rarest|smartest|fastest|tallest|most\s+\w+)\s+"
    r"(?:[\w'-]+\s+){0,3}?(?:in\s+(?:the\s+)?(?:world|history)|of\s+all\s+time)\b"
    r"|\bhistory\s+of\s+(?!the\b|this\b|that\b|your\b|our\b|you\b|it\b)"
    r"|^when\s+did\s+.+\s+(?:become|get)\s+(?:popular|common|invented|a\s+thing)\b"
    r"|^(?:when|what)\s+(?:was|were)\s+the\s+first\s+(?:[\w'-]+\s+){1,3}(?:ever\s+)?(?:used|made|invented|discovered)\b"
)
#: A past era: general knowledge ("what were victory gardens in ww2"), unless the asker's own family or
#: research is the subject ("my great-grandfather worked in the mills in the 1890s, can I see the records?").
_ERA = re.compile(
    r"\bin\s+(?:ww\s?(?:2|ii|1|i)|world\s+war\s+(?:2|ii|two|1|i|one)|ancient\s+\w+|medieval\s+\w+"
    r"|the\s+(?:1[5-9]|20)\d0s|the\s+middle\s+ages)\b"
)
_PERSONAL = re.compile(r"\b(?:i|i'm|im|my|me|we|our|us)\b")
#: Firsts and records about a subject at large: "who was the first woman appointed to the Supreme Court",
#: "when were driver's licences first introduced", "the hardest boulder problem ever sent", "the first food
#: bank in the US" — unless asked of the organisation ("are you the oldest library in the country?").
_FIRSTS = re.compile(
    r"\bwho\s+(?:was|were|is)\s+the\s+first\s+(?:[\w'-]+\s+){0,2}?(?:to|in|at)\b"
    r"|^(?:when|what\s+year)\s+(?:was|were|did)\s+.{3,60}?\s+first\s+(?:introduced|invented|used|made|built|"
    r"founded|opened|created|started|discovered|sold|required|issued)\b"
    r"|\b(?:first|oldest|biggest|largest|smallest|hardest|longest|highest|deepest|tallest|fastest|most\s+\w+)\s+"
    r"(?:[\w'-]+\s+){0,3}?(?:ever\s+(?:\w+ed|sent|climbed|built|made|run|won|sold|seen|found|caught|grown)"
    r"|in\s+(?:the\s+)?(?:us|usa|united\s+states|america|country|nation|uk|canada))\b"
)
_ASKED_OF_IT = re.compile(r"\b(?:you|your|u|ur|y'?all|this|here|we|our)\b")
#: Careers in the field: "how do I get a job as a museum curator", "how many years of school does it take
#: to become a pharmacist" — not the organisation's own jobs or roles ("how do I become a volunteer").
_CAREER = re.compile(
    r"\b(?:get|find|land)\s+a\s+job\s+as\s+an?\b"
    r"|\b(?:years?|school|college|university|degree|training|study|education)\b.{0,40}\bto\s+become\s+an?\b"
    r"|\bhow\s+(?:do|can|would|does|did)\s+(?:i|one|someone|somebody|you|people)\s+become\s+an?\s+"
    r"(?:licensed|certified|professional|registered|accredited)\b"
    r"|\bcareer\s+(?:as|in)\s+an?\b"
)


def asks_general_knowledge(lowered: str) -> bool:
    """Whether a question (normalized, lower case) asks for general knowledge: inventions and discoveries,
    records, the history of a subject, or life in a past era that is not the asker's own family's."""
    if GENERAL_KNOWLEDGE.search(lowered):
        return True
    if _FIRSTS.search(lowered) is not None and _ASKED_OF_IT.search(lowered) is None:
        return True
    return _ERA.search(lowered) is not None and _PERSONAL.search(lowered) is None


def asks_about_a_career(lowered: str) -> bool:
    """Whether a question asks how to work in the organisation's field, not for one of its own jobs."""
    return _CAREER.search(lowered) is not None and _ASKED_OF_IT.search(lowered) is None


#: The forms of general advice about a subject: the best product ("what's the best used car for a new teen
#: driver"), doing it yourself ("how do I build a putting green in my backyard", "how do i file my own taxes"), how
#: much of a thing one should do, who won, how a thing works, the difference between two things. The classifier
#: measures what a question is about and is sure of these (0.9 and more at the golf club); asked of the
#: organisation ("which membership is best for you?") they are its own.
_ADVICE = re.compile(
    r"^(?:what(?:'?s|\s+is|\s+are)|which|whats)\s+(?:the\s+|a\s+)?(?:best|good|top|cheapest|safest|healthiest|easiest)\s+"
    # … but not the organisation's own offer or visit: "the best time to come", "the best plan for a family".
    r"(?!(?:way|ways|time|times|day|days|option|options|plan|plans|package|packages|deal|deals|membership|memberships"
    r"|pass|passes|ticket|tickets|seat|seats|room|rooms|price|prices|rate|rates|entrance|phone|number|email|place\s+to)\b)"
    r"|^(?:best|good)\s+\w+|\bwhich\s+\w+\s+(?:is|are)\s+(?:the\s+)?best\b"
    r"|\bhow\s+(?:do|can|should|would)\s+(?:i|you|we)\b.*\b(?:myself|ourselves|at\s+home|my\s+own|"
    r"in\s+(?:my|the|our)\s+(?:backyard|garage|driveway|house|yard|kitchen|apartment))\b"
    # How much or how many of a thing one should do or have: "how much water should I drink a day", "how much
    # should i tip housekeeping" (not "how long should i expect to wait", "how often should i come in": a visit).
    r"|\bhow\s+(?:much|many)\s+(?:\w+\s+){0,3}should\s+i\b"
    r"|^who\s+(?:won|has\s+won|holds|is\s+the\s+(?:best|greatest|most))\b|\b(?:greatest|best)\s+(?:\w+\s+){1,2}"
    r"(?:of\s+all\s+time|ever)\b"
    r"|^how\s+(?:does|do)\s+(?!you\b|i\b|we\b|u\b)(?:\w+\s+){1,4}work\b|\bdifference\s+between\b"
)
#: Asked of the organisation: "you", "here", "we" (a member of it), "this place"; "the US" is a country.
_ASKED_OF_US = re.compile(r"\b(?:you|your|yours|u|ur|y'?all|ya|here|this\s+place|we|our|(?<!the\s)us)\b")


def asks_for_general_advice(lowered: str) -> bool:
    """Whether a lower-cased question asks for general advice about a subject, not of the organisation (`_ADVICE`)."""
    return _ADVICE.search(lowered) is not None and _ASKED_OF_US.search(lowered) is None


#: Words of the questions any organisation gets from the people it serves (beyond `service_questions.txt`'s
#: own words): days, times, visits, contact, money, access. Only these and the scope's own vocabulary may
#: appear in a question `service_question` accepts, so "when does the zoo open?" (zoo) never qualifies.
_WHEN_RAW = """
    open opening close closing closed hour hours hr hrs time today tonight tomorrow morning afternoon evening night noon
    midnight early late later now soon week weekend weekday day month year daily weekly monday tuesday
    wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun am pm 1am 2am 3am 4am
    5am 6am 7am 8am 9am 10am 11am 12am 1pm 2pm 3pm 4pm 5pm 6pm 7pm 8pm 9pm 10pm 11pm 12pm
    holiday holidays christmas eve thanksgiving easter memorial labor independence 4th fourth july new years
    year's years halloween presidents columbus veterans juneteenth mlk
"""
_SERVICE_RAW = (
    _WHEN_RAW
    + """
    come coming stop drop walk walkin visit visiting stay wait waiting line queue busy crowded quiet there
    anyone anybody someone somebody person people staff human open-late appointment appointments booking
    reserve reservation schedule reschedule cancel cancellation available availability slot spot opening
    fit squeeze same-day sameday next first last ahead advance notice
    where located location address find directions get there close nearby far parking park lot garage
    street bus accessible wheelchair ramp elevator stairs entrance door
    phone number call text email contact reach talk speak website online app message chat
    cost costs price prices pricing charge charges fee fees rate rates much expensive cheap cheaper free
    discount discounts deal deals coupon promo membership member
    pay paying payment payments card cards credit debit cash check cheque venmo paypal apple google installment
    installments plan plans deposit refund refunds return exchange receipt invoice bill tip tips gift
    long take takes quick fast soon wait minutes min hours days weeks
    bring need needed require required sign signup register form forms id document documents
    wifi bathroom restroom restrooms water food drink coffee eat lunch snack
    real actual live agent representative manager supervisor human reception front desk office touch reach
    allowed allow
    """
)
#: Words that go with a service question but do not make one: who comes ("senior", "dogs") and filler.
#: "do u have any senior dogs right now" is about the animals, not about visiting.
_SERVICE_COMPANY = """
    kid kids child children baby babies family friend friends guest guests pet pets dog dogs service animal
    student students senior seniors military
    help question questions information info still ok okay fine yes no sure right anything something
    what whats hows wheres whens also ever usually always ok go going see able possible
    anywhere somewhere here want like need needs now just
    without before after until during around near other else more less every each by off pick up
    should shall might must ought
    """

#: At least one of these makes a question a service question: days and times, visits, place, contact, money.
SERVICE_ANCHORS = frozenset(t for w in _SERVICE_RAW.split() for t in terms(w)) - frozenset(
    t for w in _SERVICE_COMPANY.split() for t in terms(w)
)
SERVICE_WORDS = SERVICE_ANCHORS | frozenset(t for w in _SERVICE_COMPANY.split() for t in terms(w))
_WHEN_WORDS = frozenset(t for w in _WHEN_RAW.split() for t in terms(w))
#: More words of service questions ("is there somewhere to leave the car", "can we bring our own lunch in", "can we
#: move our booking to sunday", "what happens if we arrive late"), for `service_question` only: the topic
#: classifier's service feature was fitted on SERVICE_WORDS.
_ASKED_ANCHORS = frozenset(terms("arrive arriving arrival leave car cars bag bags luggage stroller"))
_ASKED_WORDS = (
    SERVICE_WORDS
    | _ASKED_ANCHORS
    | frozenset(
        terms(
            "book mom mum dad parent parents grandma grandpa grandmother grandfather husband wife partner neighbor "
            "neighbour him her them own till while move change switch swap happen happens miss missed"
        )
    )
)
#: Words that make a terse question, asked of no one, an hours question: "hrs sunday?", "open late tonight?".
_HOURS_WORDS = frozenset({"hour", "hr", "hrs", "open", "opening", "close", "closing", "closed"})
#: Numbers, times and dates ("7", "6:30", "10pm", "4th") say when, not what.
_CLOCK = re.compile(r"^\d{1,4}(?:(?:st|nd|rd|th|am|pm|h)|(?::\d\d)?(?:am|pm)?)$")
#: … and it must be asked of the organisation: "do you", "is there", "can I", "anyone there".
_ADDRESSED = re.compile(
    r"\b(?:you|your|yours|u|ur|y'?all|ya|anyone|anybody|someone|somebody)\b|\b(?:is|are)\s+there\b|"
    r"\b(?:can|could|may|should|do|must)\s+(?:i|we)\b|\bi\s+(?:need|want)\b"
)


def service_question(clean: str, scope_vocabulary: frozenset[str]) -> bool:
    """Is `clean` (normalized text) a plain service question ("is there parking?", "can I come in today?")?

    Every content word must be a service word or one of the scope's own, and at least one a service word
    that says when, where, how to reach or what it costs (`SERVICE_ANCHORS`), not only who comes.
    Asked in a scope's channel, such a question is about that scope: refusing "do you take cards?" at a
    bakery because cards are not baked there would be absurd, and the model answers it from the knowledge.
    """
    words = terms(clean)
    if not words or len(words) > 12:
        return False
    lowered = clean.lower()
    if not _ADDRESSED.search(lowered) and not _names_the_scope(lowered, scope_vocabulary):
        # A terse "hrs sunday?" or "open today?" in the scope's channel is asked of it too.
        return (
            len(words) <= 3
            and bool(_HOURS_WORDS.intersection(words))
            and all(w in _WHEN_WORDS or _CLOCK.match(w) for w in words)
        )
    anchored = any(w in SERVICE_ANCHORS or w in _ASKED_ANCHORS or (_CLOCK.match(w) and not w.isdigit()) for w in words)
    return anchored and all(w in _ASKED_WORDS or w in scope_vocabulary or _CLOCK.match(w) for w in words)


#: "what time does the office open", "how long is the wait": the organisation's own desk, queue and rooms.
_PLACE_NOUNS = frozenset(terms("office front desk reception wait line queue entrance lobby counter staff"))
_THE_WORD = re.compile(r"\bthe\s+([a-z][\w'-]*)")


def _names_the_scope(lowered: str, scope_vocabulary: frozenset[str]) -> bool:
    """Whether a question names the organisation by one of its own words: "is the gym wheelchair accessible?"."""
    return any(
        (t := terms(m.group(1))) and (t[0] in _PLACE_NOUNS or (t[0] in scope_vocabulary and t[0] not in SERVICE_WORDS))
        for m in _THE_WORD.finditer(lowered)
    )


#: "When does the aquarium open?", "Is Costco open on Easter?", "hours of the DMV downtown": the hours of a
#: named place. The one named group that matches is the place as the question names it.
_PLACE_HOURS = (
    re.compile(
        r"\b(?:hours|hrs|opening\s+times|opening\s+hours)\s+(?:of|for|at)\s+(?P<p>.+?)"
        r"(?:\s+(?:on|today|tonight|tomorrow|this|next|during|over|in)\b|[?.!,]|$)"
    ),
    re.compile(
        r"^(?:(?:so|and|hey|hi|ok|okay|quick\s+question)[,!]?\s+)?(?:"
        r"(?:when|what\s+time|what\s+days?|how\s+late|how\s+early|till\s+when|until\s+when)\s+"
        r"(?:does|do|is|are|will|did)\s+(?P<a>.+?)\s+(?:open|close|closing|opening|shut|get\s+open)\b"
        r"|(?:is|are|will|was)\s+(?P<b>.+?)\s+(?:open|closed|opened)\b"
        r"|what\s+are\s+(?P<c>.+?)(?:'s|s')?\s+(?:opening\s+|business\s+)?(?:hours|hrs|times)\b"
        r"|(?:does|do|will)\s+(?P<e>.+?)\s+(?:open|close)\s+(?:on|at|early|late|today|tonight|tomorrow|this|next)\b"
        r")"
    ),
    # The whole question is "<place> hours [near me | today | on sunday …]?"
    re.compile(
        r"^(?P<f>[a-z][\w'&.-]*(?:\s+[a-z0-9][\w'&.-]*){0,3}?)(?:'s|s')?\s+(?:opening\s+)?(?:hours|hrs)"
        r"(?:\s+(?:near\s+me|nearby|today|tonight|tomorrow|(?:on|this|next)\s+\w+))?\s*[?.!]*$"
    ),
)
#: Places that are the organisation asked: "you", "it", "this place", "your front desk".
_OWN_PLACE = re.compile(
    r"^(?:you|u|ya|y'?all|it|they|we|this|that|here|there|everything|everyone)\b|\b(?:your|ur|our)\b"
)
_PLACE_PREPOSITION = re.compile(r"\s+(?:on|at|in|near|by|off|across|next|behind|downtown|uptown|nearby|around)\b.*$")
#: Words that say where or which, not what: "the DMV office downtown", "the new gym".
_PLACE_FILLER = frozenset(
    {"local", "nearest", "closest", "new", "old", "main", "big", "little", "one", "place", "today"}
    # Words for any organisation's premises: "the bowling alley" is Pinecrest Lanes' own.
    | {"alley", "building", "facility", "location", "venue", "premise", "complex"}
)


#: Things that open and close that are not places: "when do mothers day preorders open", "when does registration
#: close" ask when something can be done, of the organisation asked.
_OPENS = frozenset(
    terms(
        """
        registration registrations enrolment enrollment application applications signup signups sign-ups preorder
        preorders pre-orders order orders booking bookings reservation reservations sale sales ticket tickets waitlist
        submission submissions entry entries nomination nominations vote voting poll polls ballot ballots lottery
        audition auditions tryout tryouts season window portal form forms call calls round rounds
        """
    )
)


def other_place(
    clean: str,
    uses: Callable[[str], bool],
    vocabulary: frozenset[str] = frozenset(),
    names: Sequence[tuple[str, ...]] = (),
) -> str | None:
    """The place a question about opening hours names, when that place is not the scope's own, else None.

    `clean` is the normalized question; `uses(word)` says whether the scope's texts use a word, and
    `vocabulary` is their words (for abbreviations: "rec" for "recreation"). Every word that names the place
    must be the scope's: "When does the Harbor branch open?" is the library's own, "What time does the
    Fairview City Library close?" and "the post office" are not. Service words ("office", "front desk") and
    words that say which ("main", "nearest") do not count; a place with no other word ("the office") is not
    judged. A place whose name starts with the organisation's (`names`, see `organisation_names`) is its own:
    "the Northgate College bookstore".
    """
    text = clean.lower().strip()
    match = next((m for m in (p.search(text) for p in _PLACE_HOURS) if m is not None), None)
    if match is None:
        return None
    place = next(g for g in match.groups() if g is not None).strip(" ,")
    place = re.sub(r"^(?:the|a|an)\s+", "", place)
    if not place or _OWN_PLACE.search(place):
        return None
    head = terms(_PLACE_PREPOSITION.sub("", place))
    if _starts_with_a_name(head, names):
        return None
    if head and head[-1] in _OPENS:
        return None
    words = [w for w in head if w not in SERVICE_WORDS and w not in _PLACE_FILLER and not _CLOCK.match(w)]
    if not words or _own_name(words, uses, vocabulary):
        return None
    return place


#: Kinds of place and organisation: the words before one name it ("the Bronx Zoo", "Bayview Yacht Club").
_VENUES = frozenset(
    terms(
        """
        zoo aquarium museum library garden park pool beach school college university campus dorm academy institute
        store shop mall market supermarket grocery bank club clinic hospital department center centre gym ymca
        theater theatre cinema playhouse restaurant cafe diner bakery hotel motel resort marina campground
        shelter daycare stadium arena rink casino spa salon pharmacy dealership church
        """
    )
)
#: Words that make a kind of place an occasion: "the next vaccine clinic", "the upcoming book fair".
_OCCURRENCE = frozenset({"next", "upcoming", "following", "weekly", "monthly"})
_SCHOOLS = frozenset({"school", "college", "university", "academy"})
#: Kinds of school ("in high school", "a community college"): said without "the", no school in particular.
_KINDS_OF_SCHOOL_RAW = """
    high middle elementary primary secondary grade grammar grad graduate law med medical nursing business prep
    boarding summer night sunday junior community art film trade vocational language
"""
_KINDS_OF_SCHOOL = frozenset(_KINDS_OF_SCHOOL_RAW.split())
#: Words that end the name before a venue: articles, prepositions, pronouns, question and auxiliary words.
_NAME_STOP_RAW = """
    the a an this that these those my your our their his her its ur at to for of on in from near by with into onto
    about over under inside outside is are was were be been do does did can could will would should may might
    has have had when what where which who how why whats wheres hows and or but if than then there here any
    some every each another other i we you he she they it me us them
"""
_NAME_STOP = frozenset(_NAME_STOP_RAW.split())
#: Before these, a place is where someone goes or comes from ("the bus to the Bronx Zoo"), not the one asked.
_ROUTE_RAW = """
    from near next across behind between beside past via toward towards around outside opposite close far
    go goes going went get gets getting got take takes taking ride rides riding route routes bus buses train trains
    shuttle directions direction walk walking drive driving way trip trips stop stops stopping transfer commute
    travel fly flight ferry taxi uber lyft come comes coming leave leaving back return returning move moving
"""
_ROUTE = frozenset(_ROUTE_RAW.split())
_TOKEN = re.compile(r"[a-z0-9][\w'&-]*")
#: "who directed Jurassic Park": a verb ends the name too.
_VERB_FORM = re.compile(r"^[a-z]{3,}(?:ed|ing)$")


def _name_words(words: Iterable[str]) -> list[str]:
    """The words of a name that say which place it is: not service words ("office"), words that say where or which
    ("main", "nearest"), kinds of place ("zoo") or times."""
    return [
        w
        for w in words
        if w not in SERVICE_WORDS and w not in _PLACE_FILLER and w not in _VENUES and not _CLOCK.match(w)
    ]


def named_place(
    clean: str,
    uses: Callable[[str], bool],
    vocabulary: frozenset[str] = frozenset(),
    names: Sequence[tuple[str, ...]] = (),
) -> str | None:
    """Another organisation a question names and asks about, else None: "how much are tickets to the Bronx
    Zoo" (a zoo's bot), "slips at Bayview Yacht Club" (a marina's), "does the Brookfield County Health
    Department give flu shots" (a county clinic's).

    A name is the words before a kind of place (`_VENUES`); it is another place's when one of those words is
    not the scope's own (`uses`, abbreviations allowed), as in `other_place`. A place someone travels to or
    from ("which bus goes to the Bronx Zoo") is not what the question is about.
    """
    tokens = _TOKEN.findall(clean.lower())
    for i, token in enumerate(tokens):
        head = terms(token)
        if not head or head[0] not in _VENUES:
            continue
        start = i
        while (
            start > 0
            and start > i - 4
            and tokens[start - 1] not in _NAME_STOP
            # "who directed Jurassic Park": a verb ends the name, but not right before the kind of place
            # ("Roadwise Driving School", "the Oakdale Swimming Pool").
            and (start == i or not _VERB_FORM.match(tokens[start - 1]))
        ):
            start -= 1
        if start > 0 and tokens[start - 1] in {"a", "an", "any", "my", "our"}:
            continue  # a kind of place ("is there a coding club?") or the asker's own ("my Fairview library card")
        words = tokens[start:i]
        if not _OCCURRENCE.isdisjoint(words):
            continue  # an occasion ("when is the next vaccine clinic"), not a place: a place has no "next"
        generic = bool(words) and _KINDS_OF_SCHOOL.issuperset(words) and tokens[start - 1 : start] != ["the"]
        if head[0] in _SCHOOLS and generic:
            continue  # a kind of school or a stage of life ("french in high school"), not a named one
        before = [t for t in tokens[max(0, start - 3) : start] if t not in {"the", "a", "an", "to", "at", "from"}]
        if (before and before[-1] in _ROUTE) or (start > 0 and tokens[start - 1] in _ROUTE):
            continue
        name = _name_words(w for t in tokens[start:i] for w in terms(t))
        if (
            name
            and not _own_name(name, uses, vocabulary, venue=head[0])
            and not _starts_with_a_name([w for t in tokens[start : i + 1] for w in terms(t)], names)
        ):
            return " ".join(tokens[start : i + 1])
    return None


#: A capitalised name of up to four words, maybe joined by "of", "and", "&": "Lucky Voice", "H&R Block", "1Password",
#: "Bank of America". Only capitals tell a name from a word: these patterns read the text with its case kept.
_CAPITALISED = r"(?:[A-Z][\w'&-]*|\d+[A-Z]\w*)"
_NAME = rf"(?P<name>{_CAPITALISED}(?:\s+(?:of\s+|&\s+|and\s+)?{_CAPITALISED}){{0,3}})"
#: What an organisation does for a price: "how much does WeWork charge", "does Interflora deliver to Ireland".
_TRADES = r"(?:charges?|costs?|deliver|delivers|sells?|price|ships?|opens?|closes?|offers?)"
#: "how much is a lift ticket at Vail", not "who at Parks and Rec do I tell" nor where the asker or theirs are, work,
#: land or marry ("my road test at the Elmwood DMV", "we land at Logan", see `_ASKERS_OWN`).
_AT_NAME = re.compile(rf"(?<!\bwho\s)\bat\s+(?:the\s+)?{_NAME}")
#: What a business does for its customers, for "does / can / will X <verb>": "does Rite Aid give shingles shots",
#: "can Foyles order in a book", "will Amtrak refund my ticket". Not any verb: an own programme, room or tier is
#: named with capitals too ("will Lantern Night happen again", "does Neon Room fit 12 people", "would Garden Party
#: Bundle include the lights").
_SERVES = (
    r"(?:give|gives|take|takes|accept|accepts|rent|rents|buy|buys|sell|sells|pay|pays|refund|refunds|price|match"
    r"|matches|charge|charges|deliver|delivers|ship|ships|print|prints|fix|fixes|repair|repairs|cut|cuts"
    r"|offer|offers|open|opens|close|closes|stock|stocks|carry|carries|honou?r|honou?rs|transfer|transfers|file"
    r"|files|register|registers|store|stores|recycle|recycles|provide|provides|order|orders|book|books|do|does"
    r"|sharpen|sharpens|send|sends|install|installs|replace|replaces|service|services|clean|cleans|collect|collects)"
)
_DOES_NAME = re.compile(
    rf"\b(?i:does|did|can|could|will|would)\s+{_NAME}\s+(?:still\s+|also\s+|even\s+|ever\s+|actually\s+)?"
    rf"{_SERVES}\b"
)
#: Ways a question asks about the organisation it names, not about the one it is asked of.
_ASKS_ABOUT_NAME = (
    _AT_NAME,
    _DOES_NAME,
    re.compile(rf"\b(?i:does|did|do)\s+{_NAME}\s+(?:[a-z]+\s+)?{_TRADES}\b"),
    re.compile(
        rf"\bis\s+{_NAME}\s+(?:a\s+good|any\s+good|good|better|worse|cheaper|worth|still\s+open|open|legit|reliable)\b"
    ),
    # "my Con Edison bill", not "pay from my Monzo account"
    re.compile(
        rf"(?<!\bfrom\s)(?<!\bwith\s)(?<!\bvia\s)(?<!\busing\s)(?<!\bthrough\s)\bmy\s+{_NAME}\s+"
        r"(?:bill|account|membership|subscription|order|plan|statement|login|password)\b"
    ),
    # "What's Lifetouch's retake policy?", "Is Midas's brake warranty really lifetime?"
    re.compile(
        rf"(?:\b(?i:what'?s|whats|what\s+is|what\s+are|is|are|how\s+is)\s+(?:the\s+)?|\b[a-z][\w']*\s+){_NAME}(?:'s|s'|')\s+"
        r"(?:[a-z-]+\s+)?(?:policy|policies|warranty|guarantee|refund|returns|cancellation|interest\s+rate|rates|prices"
        r"|pricing|fees)\b"
    ),
    # "Backblaze vs Carbonite": either one (the first may open the message)
    re.compile(rf"{_NAME}\s+(?:vs\.?|versus)\s+{_NAME.replace('?P<name>', '?P<other>')}"),
    re.compile(
        rf"\b(?i:hours|times|number|phone|prices?|fees?|rates?|deadline|process)\s+(?:for|at|of)\s+(?:the\s+)?{_NAME}"
    ),
)
#: Capitalised words that name no organisation: days, months, holidays.
_NOT_NAMES = frozenset(
    terms(
        """
        monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
        september october november december christmas easter thanksgiving halloween labor labour memorial day eve
        new year valentine valentines ramadan eid diwali hanukkah passover bank holiday weekend
        """
    )
)
#: A name after one of these is a person's: "can I book with Dr Okafor again".
_TITLES = frozenset(
    {"dr", "mr", "mrs", "ms", "miss", "mx", "coach", "professor", "prof", "doctor", "nurse", "officer", "dj"}
)
#: A person in the five words before "at": the place is where the asker or someone of theirs is, works, lands or
#: marries ("I'm a teacher at Hebden Marsh Primary", "my dad lost his job at Boeing"), not what is asked about.
_ASKERS_OWN = re.compile(
    r"\b(?:i|i'?m|im|i'?ve|i'?d|i'?ll|we|we'?re|we'?ve|we'?ll|my|our|me|us|his|her|their|he|she|they|they'?re|they'?ll)"
    r"\b(?:\s+[\w'-]+){0,4}\s*$",
    re.I,
)


#: Family words that open a person's name: "Grandma Pearl", "Uncle Ray".
_FAMILY = frozenset(
    terms(
        """
        grandma grandpa granny gran grandad granddad grandmother grandfather nana nan papa pops mama mom mum mommy
        mummy dad daddy aunt auntie aunty uncle cousin baby sister brother sis bro son daughter wife husband
        """
    )
)


@functools.cache
def first_names() -> frozenset[str]:
    """People's first names (bot/gate/data/first_names.txt: the US Census Bureau's frequently occurring ones), folded
    as `terms` folds a question's words ("Chris" is read as "chri")."""
    path = Path(__file__).resolve().parent / "data" / "first_names.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(t for w in lines if w.strip() and not w.startswith("#") for t in terms(w))


def _a_person(name: str) -> bool:
    """Whether a capitalised name reads as a person's: a first name or a family word first (a title first is never
    judged, see `_foreign`)."""
    words = terms(name)
    return bool(words) and (words[0] in first_names() or words[0] in _FAMILY)


def _foreign(
    name: str, uses: Callable[[str], bool], vocabulary: frozenset[str], names: Sequence[tuple[str, ...]]
) -> bool:
    """Whether a capitalised name is another organisation's (see `named_organisation`)."""
    words = terms(name)
    if not words or words[0] in _TITLES or _NOT_NAMES.issuperset(words):
        return False
    if _starts_with_a_name(words, names) or tuple(words) in names:
        return False
    if len(words) == 1 and any(len(n) > 1 and words[0] == "".join(w[0] for w in n) for n in names):
        return False  # the organisation's initials ("GDS" for Greenway Driving School)
    rest = [w for w in _name_words(words) if w not in _NOT_NAMES]
    return bool(rest) and not _own_name(rest, uses, vocabulary)


def named_organisation(
    cased: str,
    uses: Callable[[str], bool],
    vocabulary: frozenset[str] = frozenset(),
    names: Sequence[tuple[str, ...]] = (),
) -> str | None:
    """Another organisation a question names with capitals and asks about, else None: "how much is a lift ticket
    at Vail", "does Waterstones price match", "how do I pay my Con Edison bill", "Backblaze vs Carbonite".

    `cased` is the question cleaned with its case kept (`clean_text(text, keep_case=True)`). A name is a run of
    capitalised words in one of the ways a question asks about an organisation (`_ASKS_ABOUT_NAME`); it is
    another's when its words (other than service words and kinds of place) are not all the scope's own, as in
    `named_place`. A person (after a title), a day or a holiday, the organisation's own names and initials, the
    first word of the message, a place where the asker or theirs are ("we land at Logan") and a comparison with the
    scope's own ("Vaultly vs Carbonite") are not judged. A text in capitals throughout is not judged either: there
    capitals say nothing.
    """
    letters = [c for c in cased if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) > len(letters) / 2:
        return None
    start = len(cased) - len(cased.lstrip(" \t\"'(¡¿*-"))
    for pattern in _ASKS_ABOUT_NAME:
        for match in pattern.finditer(cased):
            if pattern is _AT_NAME and _ASKERS_OWN.search(cased[: match.start()]):
                continue
            if pattern is _DOES_NAME and _a_person(match.group("name")):
                continue
            if "other" in pattern.groupindex:
                # A comparison names two: with the scope's own on one side, it is asked of the scope.
                if all(_foreign(match.group(g), uses, vocabulary, names) for g in ("name", "other")):
                    return match.group("other")
            elif match.start("name") != start and _foreign(match.group("name"), uses, vocabulary, names):
                return match.group("name")
    return None


#: "Answers questions about [the] Northgate College: …": the organisation's name, capitalised words joined
#: by "of", "and", "&" ("City of Westbrook Recycling and Waste", "Crumb & Co.").
_NAME_IN_DESCRIPTION = re.compile(
    r"\babout\s+(?:the\s+)?([A-Z0-9][\w'&.-]*(?:\s+(?:(?:of|and|&|de|la|on)\s+)?[A-Z0-9&][\w'&.-]*)*)"
)


def organisation_names(description: str, aliases: Sequence[str] = ()) -> tuple[tuple[str, ...], ...]:
    """The names the organisation goes by, as word lists: the capitalised name its description gives after
    "about" ("Answers questions about Northgate College: …"), and its aliases."""
    found = _NAME_IN_DESCRIPTION.search(description)
    raw = [found.group(1)] if found else []
    out = [tuple(terms(n)) for n in (*raw, *aliases)]
    return tuple(dict.fromkeys(n for n in out if n))


def _starts_with_a_name(words: Sequence[str], names: Sequence[tuple[str, ...]]) -> bool:
    """Whether a place's words start with one of the organisation's names and say more ("northgate college
    bookstore"): its own shop, pool or annex."""
    return any(len(words) > len(n) and tuple(words[: len(n)]) == n for n in names)


#: Words that say which kind of body runs a place, not which place it is: "the Riverside Public Library" is
#: the Riverside City Library's own when its knowledge never says "public".
_CIVIC = frozenset(["public", "city", "county", "community", "municipal", "town", "village", "central", "memorial"])


def _own_name(name: list[str], uses: Callable[[str], bool], vocabulary: frozenset[str], venue: str = "") -> bool:
    """Whether a place's name (the words before its kind of place, `venue`) is the scope's own: every word is
    the scope's, or every word but the civic ones ("public", "county") while another word, or the kind of place,
    is. "the Riverside Public Library" and "the public library" are the Riverside City Library's own; "the
    Fairview Public Library" is not, nor is "the public library" at a bike shop.
    """
    own = [_names_own(w, uses, vocabulary) for w in name]
    if all(own):
        return True
    pairs = list(zip(name, own, strict=True))
    if venue:
        pairs.append((venue, _names_own(venue, uses, vocabulary)))
    return all(o or w in _CIVIC for w, o in pairs) and any(o and w not in _CIVIC for w, o in pairs)


def _names_own(word: str, uses: Callable[[str], bool], vocabulary: frozenset[str]) -> bool:
    """Whether the scope's texts use `word`, or a word it abbreviates ("rec" for "recreation")."""
    if uses(word):
        return True
    return len(word) >= 3 and any(v.startswith(word) for v in vocabulary)


#: `Asked.rule` of a message that stops mid-sentence.
CUT_OFF_RULE = "topic:cut-off"
#: The rule of a question about something the asker has with the organisation (`own_booking`).
OWN_BOOKING_RULE = "topic:own-booking"
#: A message whose last word needs another after it ("can i bring my", "ahmed is a", "what time does the") was sent
#: before it was finished, often by an Enter pressed too soon. Words that can end a question are not here ("who
#: do i talk to", "what is it for", "can i bring her").
_CUT_OFF = re.compile(r"(?:^|\s)(a|an|the|my|your|ur|our|their|its|and|or|but|than)\s*$")


def cut_off(clean: str) -> str | None:
    """The word a message of two words or more stops on when it stops mid-sentence (see `_CUT_OFF`), else None.
    A message ending in a question mark or a full stop was finished."""
    text = clean.lower().strip().strip("\"'“”‘’()[]*_~ ")
    if len(text.split()) < 2:
        return None
    found = _CUT_OFF.search(text)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Asked:
    """The verdict on what a question asks for, reached before the topic classifier."""

    verdict: Literal["answer", "refuse"]
    rule: str
    reason: str


def what_is_asked(
    clean: str,
    folded: str,
    *,
    uses: Callable[[str], bool],
    vocabulary: frozenset[str],
    creative: bool = False,
    general_knowledge: bool = False,
    names: Sequence[tuple[str, ...]] = (),
    cased: str = "",
) -> Asked | None:
    """The screens in the gate's order (a message cut off mid-sentence, creative writing, general knowledge,
    careers in the field, another place's hours, another named place, another organisation named with capitals
    when `cased`, the question with its case kept, is given, a plain service question), or None when the topic
    classifier decides. The training script leaves out the same questions but those named with capitals (the
    classifier was fitted before that screen; it still reads them as other organisations' questions).
    """
    last = cut_off(clean)
    if last is not None:
        return Asked("refuse", CUT_OFF_RULE, f"the message stops mid-sentence (on {last!r})")
    form = creative_request(folded)
    if form is not None and not creative:
        return Asked(
            "refuse", "topic:creative", f"a request for creative writing ({form}), which this scope does not do"
        )
    lowered = clean.lower()
    if not general_knowledge and asks_general_knowledge(lowered):
        return Asked(
            "refuse",
            "topic:general-knowledge",
            "a general-knowledge question (inventions, records, history), not about this scope",
        )
    if asks_about_a_career(lowered):
        return Asked("refuse", "topic:career", "a question about working in the field, not about this scope")
    place = other_place(clean, uses, vocabulary, names)
    if place is not None:
        return Asked("refuse", "topic:other-place", f"about the hours of another place ({place!r}), not this scope's")
    place = named_place(clean, uses, vocabulary, names)
    if place is not None:
        return Asked(
            "refuse", "topic:other-place", f"about another place or organisation ({place!r}), not this scope's"
        )
    place = named_organisation(cased, uses, vocabulary, names) if cased else None
    if place is not None:
        return Asked("refuse", "topic:other-place", f"about another organisation ({place!r}), not this scope's")
    # "how much water should I drink a day" has only service words, but is advice asked of no one: the classifier
    # decides it, with the higher threshold of general advice.
    if service_question(clean, vocabulary) and not asks_for_general_advice(lowered):
        return Asked(
            "answer", "topic:service", "a service question (hours, visits, contact, prices) asked of this scope"
        )
    return None


#: What a customer has with an organisation: "my appointment", "our booking", "my membership", "the order I placed".
_HELD = (
    r"(?:appointments?|appts?|bookings?|reservations?|res|sessions?|lessons?|class(?:es)?|tours?|visits?|slots?|"
    r"orders?|tickets?|memberships?|subscriptions?|accounts?|invoices?|receipts?|deposit|package|pass|table|pickup|"
    r"delivery|collection|spot|place)"
)
#: Words that may stand between "my" and what is held without naming another business: "my 2:30 appointment", "our
#: next session", "my annual membership".
_HELD_PLAIN = frozenset(
    terms(
        """
        next last first current annual monthly weekly yearly family upcoming existing original online new old usual
        regular standing day week weekend morning afternoon evening saturday sunday monday tuesday wednesday thursday
        friday today tomorrow tmrw tonight group joint single second third early late
        """
    )
)
_OWN_HELD = re.compile(
    rf"\b(?:my|our)\s+(?:(?P<mod>[\w:'-]+)\s+)?{_HELD}\b|"
    rf"\b(?:i|we)\s+(?:have|had|got)\s+(?:an?|the)\s+(?:(?P<mod2>[\w:'-]+)\s+)?{_HELD}\b|"
    rf"\b(?:the|this)\s+(?:(?P<mod3>[\w:'-]+)\s+)?{_HELD}\s+(?:i|we)\s+(?:have|had|made|placed|booked|paid|bought)\b|"
    rf"\bthe\s+(?:(?P<mod4>[\w:'-]+)\s+)?(?:membership|booking|reservation|appointment|appt|account|subscription)\b|"
    r"\bcopy\s+of\s+(?:the|my|our|a)\s+(?:[\w'-]+\s+)?(?:invoice|receipt|statement|bill|contract|report)\b|"
    r"\b(?:i|we|(?:is|was|are|were)\s+)\s*(?:booked|reserved|ordered|bought|paid\s+for|signed\s+up\s+for|registered\s+for)"
    r"\s+(?:(?:a|an|the|some|my|our|two|three|four|\d+)\s+)?(?P<obj>[\w'-]+)(?:\s+(?P<obj2>[\w'-]+))?"
)
#: What is held, as `terms` folds it: the thing booked or bought must be one ("i bought timed tickets"), or a word of
#: the scope's ("i booked a station tour"), not a thing of its own ("we bought a used car", "a hardback").
_HELD_NOUNS = frozenset(
    terms(
        """
        appointment appt booking reservation res session lesson class tour visit slot order ticket membership
        subscription account invoice receipt deposit package pass table pickup delivery collection spot place trip
        course
        """
    )
)
#: What they want done with it: moved, cancelled, paused, transferred, changed, a copy of the paperwork, or to know
#: what happens when they are late.
_HELD_CHANGE = re.compile(
    r"\b(?:move|moving|moved|reschedul\w*|rebook\w*|change|changing|changed|switch|swap|cancel\w*|pause|freeze|"
    r"postpone|push\s+(?:it|back)|transfer\w*|late|miss|missed|still\s+come|refund\w*|money\s+back|credit|copy|resend|"
    r"re-send|update|upgrade|downgrade|extend|add|remove|name|come\s+with|bring|instead\s+of\s+me|in\s+my\s+place|"
    r"on\s+my\s+behalf|lose\s+my|hold)\b"
)
#: The businesses of the rest of a person's life: "my GP appointment", "my landlord kept my deposit", "my train
#: ticket". A question naming one is not about the scope, unless the scope's own words include it.
_ELSEWHERE = frozenset(
    terms(
        """
        landlord landlady tenant employer boss bank airline airlines insurer insurance lender mortgage loan
        university uni doctor gp dentist dental hospital surgery embassy consulate visa court jury council dmv irs
        government passport carrier provider broadband utility electric electricity courier streaming gym salon
        plumber contractor builder lease airbnb concert festival interview
        """
    )
)


#: Ways of asking the organisation for something that `_ADDRESSED` (which has "can i", "do i", "could we") lacks:
#: "will i", "would we", "is it possible", "i'd like", "please".
_ASKED_OF = re.compile(
    r"\b(?:will\s+(?:i|we)|would\s+(?:i|we)|is\s+it\s+possible|i'?d\s+like|we'?d\s+like|please|pls|plz|"
    r"is\s+that\s+(?:ok|okay|alright|possible))\b"
)


def own_booking(clean: str, vocabulary: frozenset[str]) -> bool:
    """Whether `clean` asks the organisation to change or explain something the asker has with it ("i have an
    appointment thursday at 9 but my kid is sick can i reschedule", "I need a copy of my invoice from March for my
    accountant", "we got married and I'd like the membership changed to my new last name").

    It must say what the asker holds ("my appointment", "i booked") with no word before it that names another kind
    of business ("my GP appointment", "my train ticket") and what they want done with it (moved, cancelled, paused,
    a copy, a new name, someone coming instead), be asked of someone, and name none of the businesses of the rest
    of a person's life (`_ELSEWHERE`: landlord, employer, airline, bank, …) that the scope's own words do not
    include. Asked in a scope's channel, it is about that scope: the classifier, which measures what a question is
    about, reads the reasons people give ("stuck at work", "my bus is late") and refuses them.
    """
    lowered = clean.lower()
    if _HELD_CHANGE.search(lowered) is None or not any(_held(m, vocabulary) for m in _OWN_HELD.finditer(lowered)):
        return False
    if not _ADDRESSED.search(lowered) and not _ASKED_OF.search(lowered):
        return False
    words = set(terms(lowered))
    return not any(w in _ELSEWHERE and w not in vocabulary for w in words)


def _held(match: re.Match[str], vocabulary: frozenset[str]) -> bool:
    """Whether a match of `_OWN_HELD` is something held with this scope: "i booked a station tour", not "a book I
    ordered and let my husband …" (no object), "we bought a used car" or "my GP appointment"."""
    if match.group("obj") is not None:
        first, second = terms(match.group("obj")), terms(match.group("obj2") or "")
        if not first or not (
            first[0] in _HELD_NOUNS or first[0] in vocabulary or (second and second[0] in _HELD_NOUNS)
        ):
            return False
    mod = match.group("mod") or match.group("mod2") or match.group("mod3") or match.group("mod4")
    folded = terms(mod) if mod is not None else []
    return not folded or bool(
        folded[0] in _HELD_PLAIN or folded[0] in vocabulary or _CLOCK.match(folded[0]) or folded[0].isdigit()
    )
