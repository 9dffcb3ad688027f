"""Making what platforms hand us safe to store, screen and show, in one step at the dispatch boundary.

Platforms deliver text the database cannot take (PostgreSQL refuses NUL in text columns; a lone
surrogate, which JSON's `\\ud800` escape decodes to, cannot be encoded as UTF-8) and ids longer than the
columns that hold them. `clean_event` fixes the text and refuses the ids, so nothing deeper has to care.
"""

from __future__ import annotations

import dataclasses
import re

from bot.events import (
    Actor,
    CardAction,
    CommandInvoked,
    Event,
    FetchedMessage,
    InboundMessage,
    MessageRef,
    Place,
    ReactionAdded,
)

#: Workspace, channel, thread, message and user ids are stored in VARCHAR(128) columns.
MAX_ID_CHARS = 128
#: Display names are stored in VARCHAR(256) columns; longer ones are cut, not refused.
MAX_NAME_CHARS = 256
#: Reaction and card-action names, which the core only compares against short fixed lists (Slack's custom
#: emoji names run to 100 characters, skin tone suffix aside).
MAX_KEYWORD_CHARS = 128
#: Case ids are 32-bit INTEGER primary keys; a larger one cannot name a case.
MAX_CASE_ID = 2**31 - 1
#: Permalinks are stored in a VARCHAR(1024) column.
MAX_LINK_CHARS = 1024
#: Request ids end up in the `request_id` column (64) and in every log line of the question.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

#: C0 controls but tab and newline, DEL and the C1 controls: never meant, and unsafe on a terminal.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Bidi embeddings, overrides and isolates: they make a text display in another order than it reads.
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


class MalformedEvent(ValueError):
    """An event whose ids no platform would send (too long, control characters) or whose fields have the wrong type."""


def clean_text(text: str) -> str:
    """`text` as every store and screen can take it.

    Control characters (but tab and newline) are removed, line breaks become `\\n`, surrogate pairs are
    joined and lone surrogates replaced with U+FFFD.
    """
    if _SURROGATE.search(text):
        # UTF-16 round trip: a valid pair becomes its character, a lone half becomes U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


def clean_output(text: str) -> str:
    """Text the bot is about to post (model output), cleaned and without bidi embeddings or overrides.

    Without those controls a post displays in the order the output screen read it (a right-to-left
    override shows "etacinborf" as a blocked word); right-to-left scripts need none of them.
    """
    return _BIDI_CONTROLS.sub("", clean_text(text))


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is a {type(value).__name__}, not text")
    return clean_text(value)


def _name(value: object, what: str) -> str:
    return _text(value, what)[:MAX_NAME_CHARS]


def _id(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} is a {type(value).__name__}, not text")
    if not value and not empty:
        raise MalformedEvent(f"{what} is empty")
    if len(value) > MAX_ID_CHARS:
        raise MalformedEvent(f"{what} is {len(value)} characters long (at most {MAX_ID_CHARS})")
    if not value.isprintable() or " " in value:
        # Platforms make ids of letters, digits and punctuation; cleaning one would point it elsewhere.
        raise MalformedEvent(f"{what} contains spaces, control or invisible characters")
    return value


def _place(place: object, what: str) -> Place:
    if not isinstance(place, Place):
        raise MalformedEvent(f"{what} is not a place")
    thread = None if place.thread is None else _id(place.thread, f"{what} thread")
    # A Discord thread's parent channel carries the channel's scope binding.
    parent = None if place.parent is None else _id(place.parent, f"{what} parent channel")
    return Place(
        _id(place.platform, f"{what} platform"),
        _id(place.workspace, f"{what} workspace", empty=True),
        _id(place.channel, f"{what} channel"),
        thread,
        is_direct=place.is_direct is True,
        parent=parent,
    )


def _ref(ref: object, what: str) -> MessageRef:
    if not isinstance(ref, MessageRef):
        raise MalformedEvent(f"{what} is not a message reference")
    return MessageRef(_place(ref.place, what), _id(ref.message_id, f"{what} message id"))


def _actor(actor: object, what: str) -> Actor:
    if not isinstance(actor, Actor):
        raise MalformedEvent(f"{what} is not an actor")
    roles = actor.roles if isinstance(actor.roles, tuple) else ()
    return Actor(
        _id(actor.platform, f"{what} platform"),
        _id(actor.user_id, f"{what} id"),
        _name(actor.display_name, f"{what} name"),
        is_bot=actor.is_bot is True,
        roles=tuple(r for r in roles if isinstance(r, str) and 0 < len(r) <= MAX_ID_CHARS),
    )


def _keyword(value: object, what: str) -> str:
    text = _text(value, what).strip()
    if not text or len(text) > MAX_KEYWORD_CHARS:
        raise MalformedEvent(f"{what} is empty or longer than {MAX_KEYWORD_CHARS} characters")
    return text


def clean_event(event: Event) -> Event:
    """`event` with its texts cleaned and its ids checked; MalformedEvent says what no platform would send."""
    if isinstance(event, InboundMessage):
        rid = event.request_id
        return dataclasses.replace(
            event,
            ref=_ref(event.ref, "message"),
            author=_actor(event.author, "author"),
            text=_text(event.text, "message text"),
            mentions_bot=event.mentions_bot is True,
            mentions_others=event.mentions_others is True,
            via_command=event.via_command is True,
            permalink=event.permalink if isinstance(event.permalink, str) and len(event.permalink) <= 1024 else None,
            # A platform's request id that could not be a log field is replaced by one of ours.
            request_id=rid if isinstance(rid, str) and _REQUEST_ID.fullmatch(rid) else None,
        )
    if isinstance(event, ReactionAdded):
        author = event.target_author_id
        return ReactionAdded(
            target=_ref(event.target, "reacted-to message"),
            reactor=_actor(event.reactor, "reactor"),
            emoji=_keyword(event.emoji, "emoji"),
            target_author_id=None if author is None else _id(author, "reacted-to author"),
        )
    if isinstance(event, CardAction):
        case_id = event.case_id
        if not isinstance(case_id, int) or isinstance(case_id, bool) or not 0 < case_id <= MAX_CASE_ID:
            raise MalformedEvent(f"case id {str(case_id)[:20]!r} is not a case number")
        return CardAction(
            actor=_actor(event.actor, "presser"),
            case_id=case_id,
            action=_keyword(event.action, "card action"),
            card=None if event.card is None else _ref(event.card, "card"),
            argument=_text(event.argument, "card note"),
        )
    if isinstance(event, CommandInvoked):
        return CommandInvoked(
            actor=_actor(event.actor, "command user"),
            place=_place(event.place, "command place"),
            text=_text(event.text, "command text"),
        )
    raise MalformedEvent(f"{type(event).__name__} is not an event")


def clean_fetched(message: FetchedMessage | None) -> FetchedMessage | None:
    """A message read back from a platform (evidence for a report), as every store can take it.

    Unlike an event it is never refused: the report must be filed, so what does not fit is cut.
    """
    if message is None:
        return None
    author = message.author
    link = message.permalink
    return dataclasses.replace(
        message,
        text=clean_text(message.text) if isinstance(message.text, str) else "",
        author=Actor(
            author.platform,
            clean_text(str(author.user_id))[:MAX_ID_CHARS],
            clean_text(str(author.display_name))[:MAX_NAME_CHARS],
            is_bot=author.is_bot is True,
            roles=author.roles,
        ),
        permalink=link if isinstance(link, str) and len(link) <= MAX_LINK_CHARS and clean_text(link) == link else None,
    )
