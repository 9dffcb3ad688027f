"""The Discord adapter: a `Platform` on discord.py's gateway client.

It connects, turns gateway events into core events (through `adapters.discord_edge`) and carries out
what the core asks for over Discord's REST API. Decisions stay in the core and in `moderation/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import discord

from adapters.discord_client import (
    NETWORK_ERRORS,
    READY_TIMEOUT,
    TOKEN_ENV,
    Handlers,
    Interaction,
    ScopeClient,
    acknowledge,
    card_view,
    check_token,
    handling,
    override_endpoints,
    pending_for,
)
from adapters.discord_edge import (
    ANSWER_MENTIONS,
    CARD_MENTIONS,
    DIRECT,
    MAX_MESSAGE_CHARS,
    PLATFORM,
    Rejected,
    ReviewerPings,
    actor_of,
    allowed_mentions,
    card_buttons,
    card_embed,
    fit,
    is_card_for,
    is_chat,
    parent_of,
    platform_error,
    reference_to,
    reviewer_pings,
    snowflake,
    timeout_until,
    to_card_action,
    to_command,
    to_inbound,
    to_reaction,
)
from bot.cli import CredentialsError
from bot.config import Config, ConfigError
from bot.events import (
    Actor,
    Event,
    EventSink,
    FetchedMessage,
    MessageRef,
    OutboundMessage,
    Place,
    PlatformError,
    PlatformLimits,
    Reply,
    ReviewCard,
)
from bot.replier import split_text

log = logging.getLogger(__name__)

API_URL_ENV = "DISCORD_API_URL"
GATEWAY_URL_ENV = "DISCORD_GATEWAY_URL"
#: Seconds in-flight events get to finish at shutdown while the REST session is still open.
STOP_GRACE = 10.0
#: Seconds one REST call may take, rate-limit waits included (discord.py waits up to 60 s for those).
REST_TIMEOUT = 90.0
#: Recent reviewer-channel messages searched for a card whose post was interrupted.
CARD_SEARCH_DEPTH = 100
#: Private replies longer than one message are sent as at most this many.
MAX_PRIVATE_PARTS = 5

T = TypeVar("T")


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.startswith(schemes):
        raise ConfigError(f"{name}: {value!r} must start with {' or '.join(schemes)}")
    return value.rstrip("/")


class DiscordAdapter(Handlers):
    """A `Platform` for one Discord bot user, on discord.py."""

    name = PLATFORM
    limits = PlatformLimits(max_message_chars=MAX_MESSAGE_CHARS, edit_interval=1.0)

    def __init__(
        self,
        *,
        token: str,
        api_url: str | None = None,
        gateway_url: str | None = None,
        guild_ready_timeout: float = 2.0,
        sync_commands: bool = True,
        stop_grace: float = STOP_GRACE,
        rest_timeout: float = REST_TIMEOUT,
        pings: ReviewerPings | None = None,
    ) -> None:
        self._token = token
        self._pings = pings or ReviewerPings()
        self._rest_timeout = rest_timeout
        self._api_url = api_url
        self._gateway_url = gateway_url
        self._guild_ready_timeout = guild_ready_timeout
        self._sync_commands = sync_commands
        self._stop_grace = stop_grace
        self._client: ScopeClient | None = None
        self._restore: Callable[[], None] | None = None
        self._sink: EventSink | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], config: Config, *, guild_ready_timeout: float = 2.0) -> DiscordAdapter:
        """The adapter for `DISCORD_TOKEN` (and the optional URL overrides) in `env`."""
        token = env.get(TOKEN_ENV, "").strip()
        if not token:
            raise CredentialsError(f"{TOKEN_ENV} is not set: copy the bot token from the Discord developer portal")
        if any(c.isspace() for c in token):
            raise CredentialsError(f"{TOKEN_ENV} contains whitespace: paste the bot token exactly as shown")
        return cls(
            token=token,
            api_url=_url(env, API_URL_ENV, ("http://", "https://")),
            gateway_url=_url(env, GATEWAY_URL_ENV, ("ws://", "wss://")),
            pings=reviewer_pings(config),
            guild_ready_timeout=guild_ready_timeout,
        )

    @property
    def connected(self) -> bool:
        """Whether the gateway connection is up and READY (false while discord.py reconnects)."""
        client = self._client
        if client is None or client.is_closed() or not client.is_ready():
            return False
        ws = client.ws
        return ws is not None and ws.open

    # Lifecycle -----------------------------------------------------------------------------------

    async def check_credentials(self) -> None:
        """Check the token over REST, without connecting the gateway; CredentialsError when it is rejected."""
        restore = override_endpoints(api_url=self._api_url, gateway_url=self._gateway_url)
        try:
            await check_token(self._token)
        finally:
            restore()

    async def start(self, sink: EventSink) -> None:
        """Log in, connect to the gateway and wait for READY; CredentialsError for a bad token."""
        self._sink = sink
        self._stopping = False
        self._restore = override_endpoints(api_url=self._api_url, gateway_url=self._gateway_url)
        client = self._client = ScopeClient(self, guild_ready_timeout=self._guild_ready_timeout)
        try:
            await client.open(self._token, ready_timeout=READY_TIMEOUT)
        except BaseException:
            await self._close_client()
            raise
        if self._sync_commands:
            await client.register_commands()

    async def stop(self) -> None:
        """Stop taking events, let in-flight ones finish (or cancel them), then disconnect."""
        self._stopping = True
        pending = [t for t in self._inflight if t is not asyncio.current_task()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self._stop_grace)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.shut()
        finally:
            restore, self._restore = self._restore, None
            if restore is not None:
                restore()

    # Events from the client ---------------------------------------------------------------------

    async def _deliver(self, event: Event) -> None:
        if self._sink is None or self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._sink(event)
        finally:
            if task is not None:
                self._inflight.discard(task)

    def _bot_role_ids(self, guild: discord.Guild | None) -> list[int]:
        role = guild.self_role if guild is not None else None
        return [role.id] if role is not None else []

    async def on_message(self, message: discord.Message) -> None:
        """Members' messages become `InboundMessage`s; the bot's own and system notices are ignored."""
        client = self._client
        if client is None or client.user is None or message.author.id == client.user.id:
            return
        if not is_chat(message):
            return
        try:
            event = to_inbound(message, bot_user_id=client.user.id, bot_role_ids=self._bot_role_ids(message.guild))
        except (Rejected, AttributeError) as e:
            log.warning("discord: rejected message %s: %s", message.id, e)
            return
        await self._deliver(event)

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """Reactions (🚩 becomes `flag`) become `ReactionAdded`s; the bot's own are ignored."""
        client = self._client
        if client is None or client.user is None or payload.user_id == client.user.id:
            return
        try:
            # A thread is a channel of its own; its parent (from the cache, when known) carries the binding.
            event = to_reaction(payload, parent_id=parent_of(client.get_channel(payload.channel_id)))
        except Rejected as e:
            log.warning("discord: rejected reaction on %s: %s", payload.message_id, e)
            return
        await self._deliver(event)

    async def on_card_press(self, interaction: Interaction, case_id: int, action: str, argument: str = "") -> None:
        """Acknowledge at once (Discord allows 3 s), then hand the press to the core."""
        try:
            event = to_card_action(interaction, case_id=case_id, action=action, argument=argument)
        except Rejected as e:
            log.warning("discord: rejected button press %s: %s", interaction.id, e)
            return
        await acknowledge(interaction, thinking=False)
        with handling(interaction):
            await self._deliver(event)

    async def on_command(self, interaction: Interaction, text: str) -> None:
        """Acknowledge privately, hand the command to the core, clear the 'thinking' note if unused."""
        try:
            event = to_command(interaction, text)
        except Rejected as e:
            log.warning("discord: rejected command %s: %s", interaction.id, e)
            return
        await acknowledge(interaction, thinking=True)
        with handling(interaction) as pending:
            await self._deliver(event)
        if not pending.answered and interaction.response.is_done():
            with contextlib.suppress(*NETWORK_ERRORS):
                await interaction.delete_original_response()

    # Platform protocol ---------------------------------------------------------------------------

    def _connected(self) -> ScopeClient:
        if self._client is None or self._client.is_closed():
            raise PlatformError("Discord is not connected", retryable=True)
        return self._client

    def _channel(self, place: Place) -> discord.PartialMessageable:
        guild = int(place.workspace) if place.workspace.isdigit() else None
        return self._connected().get_partial_messageable(snowflake(place.channel, "channel id"), guild_id=guild)

    async def _api(self, action: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self._rest_timeout)
        except TimeoutError:
            raise PlatformError(
                f"Discord did not answer within {self._rest_timeout:.0f} s: could not {action}", retryable=True
            ) from None
        except NETWORK_ERRORS as e:
            error = platform_error(e, action)
            log.debug("discord: %s", error)
            raise error from e

    async def send(self, message: OutboundMessage) -> MessageRef:
        """Post `message`, as a reply to `message.reply_to` when that is a Discord message."""
        channel = self._channel(message.place)
        sent = await self._api(
            f"post in channel {message.place.channel}",
            channel.send(
                fit(message.text, MAX_MESSAGE_CHARS) or "…",
                reference=reference_to(message.reply_to),  # type: ignore[arg-type]
                allowed_mentions=allowed_mentions(message.place, self._pings),
            ),
        )
        return MessageRef(message.place, str(sent.id))

    async def edit(self, ref: MessageRef, text: str) -> None:
        """Replace the text of one of the bot's messages."""
        partial = self._channel(ref.place).get_partial_message(snowflake(ref.message_id, "message id"))
        await self._api(f"edit message {ref.message_id}", partial.edit(content=fit(text, MAX_MESSAGE_CHARS) or "…"))

    async def delete(self, ref: MessageRef) -> None:
        """Delete a message (a member's needs Manage Messages in that channel)."""
        partial = self._channel(ref.place).get_partial_message(snowflake(ref.message_id, "message id"))
        await self._api(f"delete message {ref.message_id}", partial.delete())

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        """Read a message back; None when it was deleted."""
        channel = self._channel(ref.place)
        try:
            msg = await self._api(
                f"read message {ref.message_id}", channel.fetch_message(snowflake(ref.message_id, "message id"))
            )
        except PlatformError as e:
            if e.status == 404:
                return None
            raise
        return FetchedMessage(
            ref=ref, author=actor_of(msg.author), text=msg.content, sent_at=msg.created_at, permalink=msg.jump_url
        )

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        """Post a card (embed + persistent buttons), or update `existing`; a vanished card is posted anew."""
        embed = card_embed(card)
        view = card_view(card_buttons(card))
        content = fit(card.mention, MAX_MESSAGE_CHARS) if card.mention else None
        channel = self._channel(card.place)
        if existing is not None and existing.message_id.isdigit():
            partial = channel.get_partial_message(int(existing.message_id))
            try:
                await self._api(
                    f"update the card of case {card.case_id} in channel {card.place.channel}",
                    partial.edit(content=content, embed=embed, view=view, allowed_mentions=CARD_MENTIONS),
                )
                return existing
            except PlatformError as e:
                if e.status != 404:
                    raise
                log.info("discord: the card of case %d was deleted; posting it again", card.case_id)
        sent = await self._api(
            f"post the card of case {card.case_id} in reviewer channel {card.place.channel}",
            channel.send(content=content, embed=embed, view=view, allowed_mentions=CARD_MENTIONS),  # type: ignore[arg-type]
        )
        return MessageRef(card.place, str(sent.id))

    async def find_review_card(self, place: Place, case_id: int) -> MessageRef | None:
        """The card this bot already posted for `case_id` in `place` (recent history), so none is posted twice."""
        client = self._connected()
        if client.user is None:
            return None
        bot_id = client.user.id
        channel = self._channel(place)

        async def search() -> discord.Message | None:
            async for message in channel.history(limit=CARD_SEARCH_DEPTH):
                if is_card_for(message, case_id, bot_user_id=bot_id):
                    return message
            return None

        try:
            found = await self._api(f"search reviewer channel {place.channel} for case {case_id}", search())
        except PlatformError as e:
            if e.status == 404:
                return None
            raise
        return MessageRef(place, str(found.id)) if found is not None else None

    async def reply_privately(self, reply: Reply) -> None:
        """Ephemeral through the interaction being handled; otherwise a direct message."""
        pieces = split_text(reply.text, MAX_MESSAGE_CHARS)[:MAX_PRIVATE_PARTS]
        pending = pending_for(reply.user_id)
        if pending is not None:
            interaction = pending.interaction
            what = f"reply privately to {reply.user_id}"
            for piece in pieces:
                if interaction.response.is_done():
                    await self._api(
                        what, interaction.followup.send(piece, ephemeral=True, allowed_mentions=ANSWER_MENTIONS)
                    )
                else:
                    await self._api(what, interaction.response.send_message(piece, ephemeral=True))
                pending.answered = True
            return
        client = self._connected()
        try:
            dm = await self._api(
                f"open a DM with {reply.user_id}", client.create_dm(discord.Object(snowflake(reply.user_id, "user id")))
            )
            for piece in pieces:
                await self._api(f"send a DM to {reply.user_id}", dm.send(piece, allowed_mentions=ANSWER_MENTIONS))
        except PlatformError as e:
            if e.status != 403:
                raise
            # Members may refuse DMs from bots; that is their choice, not a fault.
            log.info("discord: could not tell %s privately: %s", reply.user_id, e)

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        """Time a member out with Discord's member timeout (at most 28 days); False in DMs."""
        if place.workspace == DIRECT or place.is_direct:
            return False
        client = self._connected()
        guild_id = snowflake(place.workspace, "guild id")
        uid = snowflake(user_id, "user id")
        what = f"time out member {user_id} in guild {place.workspace}"
        guild = client.get_guild(guild_id)
        if guild is None:
            guild = await self._api(what, client.fetch_guild(guild_id))
        member = guild.get_member(uid)
        if member is None:
            member = await self._api(what, guild.fetch_member(uid))
        end = timeout_until(until, datetime.now(UTC))
        await self._api(what, member.timeout(end, reason=fit(reason, 512)))
        return True

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        """Discord moderators are configured by role or user id (`[moderation.moderators]`); nothing more here."""
        return None
