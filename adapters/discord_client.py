"""The discord.py glue: the client, the review-card buttons, the `/scopebot` command and the parser guard.

Everything here only hands discord.py objects to a `Handlers` implementation (the adapter); the
translation itself lives in `adapters.discord_edge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord_edge import (
    ARGUMENT_ACTIONS,
    CUSTOM_ID_TEMPLATE,
    ButtonSpec,
    command_text,
    invite_url,
    platform_error,
)
from adapters.discord_screen import gateway_problem
from bot.cli import CredentialsError
from bot.events import PlatformError

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
TOKEN_ENV = "DISCORD_TOKEN"
REJECTED = f"{TOKEN_ENV} was rejected by Discord (401): reset the token in the developer portal and set it again"
#: Seconds to wait for the gateway's READY before giving up at start-up.
READY_TIMEOUT = 60.0
#: What a REST or gateway call can fail with, short of a bug.
NETWORK_ERRORS = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)
#: Gateway failures after which discord.py itself gives up on purpose (bad token, intents, clean close).
GATEWAY_FATAL = (discord.LoginFailure, discord.PrivilegedIntentsRequired, discord.ConnectionClosed)
#: Seconds before connecting again after a gateway failure discord.py does not handle itself.
GATEWAY_RETRY = 1.0

#: What the bot asks Discord for: messages in guilds and DMs (with their text), reactions, guilds.
INTENTS = discord.Intents.none()
INTENTS.guilds = True
INTENTS.guild_messages = True
INTENTS.dm_messages = True
INTENTS.reactions = True
INTENTS.message_content = True


class Handlers(Protocol):
    """What the client calls with each event it receives (the adapter implements this)."""

    async def on_message(self, message: discord.Message) -> None:
        """A message was posted."""

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction was added, cached message or not."""

    async def on_card_press(self, interaction: Interaction, case_id: int, action: str, argument: str = "") -> None:
        """A review-card button was pressed (or its text modal submitted)."""

    async def on_command(self, interaction: Interaction, text: str) -> None:
        """A `/scopebot` subcommand was run; `text` is what follows `/scopebot`."""


class ScopeClient(discord.Client):
    """A discord.py client that forwards events to the adapter and keeps malformed payloads out."""

    def __init__(self, handlers: Handlers, *, guild_ready_timeout: float) -> None:
        super().__init__(
            intents=INTENTS,
            guild_ready_timeout=guild_ready_timeout,
            allowed_mentions=discord.AllowedMentions.none(),
            # The library retries rate limits itself; waits longer than this surface as errors instead.
            max_ratelimit_timeout=60.0,
            chunk_guilds_at_startup=False,
        )
        self.handlers = handlers
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(scopebot_group(handlers))
        self._runner: asyncio.Task[None] | None = None
        self._shutting = False
        self._was_ready = False

    async def open(self, token: str, *, ready_timeout: float) -> None:
        """Log in, connect the gateway and wait for READY; CredentialsError for what the operator must fix."""
        await _log_in(self.login(token))
        runner = self._runner = asyncio.create_task(self._run_gateway(), name="discord-gateway")
        ready = asyncio.create_task(self.wait_until_ready(), name="discord-ready")
        try:
            await asyncio.wait({ready, runner}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            await asyncio.wait({ready})
        if self.is_ready():
            self._was_ready = True
            runner.add_done_callback(self._connection_ended)
            user = self.user
            log.info("discord: connected as %s (%s) in %d guild(s)", user, user.id if user else "?", len(self.guilds))
            if self.application_id is not None:
                log.info("discord: invite the bot to a server with %s", invite_url(self.application_id))
            return
        if not runner.done():
            raise PlatformError(f"the Discord gateway sent no READY within {ready_timeout:.0f} s", retryable=True)
        exc = runner.exception()
        if isinstance(exc, discord.PrivilegedIntentsRequired):
            raise CredentialsError(
                "Discord refused the Message Content intent: enable it in the developer portal "
                f"(Bot → Privileged Gateway Intents) for the bot whose token is in {TOKEN_ENV}"
            )
        if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
            raise CredentialsError(f"{TOKEN_ENV} was rejected by the Discord gateway (4004): reset the token")
        gateway = DiscordWebSocket.DEFAULT_GATEWAY
        raise PlatformError(f"could not connect to the Discord gateway at {gateway}: {exc!r}", retryable=True)

    async def _run_gateway(self) -> None:
        """discord.py's `connect()`, started again after a failure it does not handle itself.

        discord.py reconnects after network errors, but anything else raised while it reads the gateway
        (a frame nested too deeply for its JSON decoder raises RecursionError) would end the connection
        for good; one bad frame must not take Discord away until the next restart.
        """
        while True:
            try:
                await self.connect(reconnect=True)
                return
            except GATEWAY_FATAL:
                raise
            except Exception as e:
                if self._shutting or self.is_closed() or not self._was_ready:
                    raise
                log.warning(
                    "discord: rejected a gateway frame discord.py could not read (%s: %.200s); reconnecting",
                    type(e).__name__,
                    e,
                )
                ws = self.ws
                if ws is not None:
                    with contextlib.suppress(*NETWORK_ERRORS):
                        await ws.close(code=4000)
                await asyncio.sleep(GATEWAY_RETRY)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._shutting:
            return
        exc = task.exception()
        if exc is not None:
            log.error("discord: the gateway connection ended and will not reconnect: %r", exc)

    async def register_commands(self) -> None:
        """Register `/scopebot` with Discord (idempotent); a failure is logged, not fatal."""
        try:
            commands = await self.tree.sync()
        except (*NETWORK_ERRORS, app_commands.CommandSyncFailure) as e:
            log.warning("discord: could not register the /scopebot command (it may be stale): %s", e)
            return
        log.info("discord: registered %d application command(s)", len(commands))

    async def shut(self) -> None:
        """Close the connection and wait for the gateway task to end."""
        self._shutting = True
        runner, self._runner = self._runner, None
        await self.close()
        if runner is None:
            return
        done, _ = await asyncio.wait({runner}, timeout=10)
        if not done:
            runner.cancel()
            await asyncio.wait({runner}, timeout=5)
        elif not runner.cancelled() and runner.exception() is not None:
            # Already reported (by open() or _connection_ended); retrieving it is all that is left.
            log.debug("discord: gateway task ended with %r", runner.exception())

    async def setup_hook(self) -> None:
        """Before the gateway connects: re-register the persistent card buttons, guard the parsers."""
        # The buttons' custom_id carries the case, so cards posted before a restart keep working.
        self.add_dynamic_items(CaseButton)
        # discord.py has no public hook before its parsers run; a KeyError inside one would end connect().
        guard_parsers(self._connection.parsers)

    async def on_message(self, message: discord.Message) -> None:
        """Every message the gateway delivers."""
        await self.handlers.on_message(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """Every reaction, including on messages the client never cached."""
        await self.handlers.on_reaction(payload)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """An event handler raised: log it once and keep serving."""
        log.exception("discord event %s failed", event_method)


@dataclass(slots=True)
class PendingInteraction:
    """The interaction whose event is being handled, so private replies to its user can go through it."""

    interaction: Interaction
    answered: bool = False


#: Set while an interaction's event is handled (context variables follow the task and the tasks it starts).
_current: ContextVar[PendingInteraction | None] = ContextVar("scopebot_discord_interaction", default=None)


@contextlib.contextmanager
def handling(interaction: Interaction) -> Iterator[PendingInteraction]:
    """Mark `interaction` as the one being handled in this task."""
    pending = PendingInteraction(interaction)
    token = _current.set(pending)
    try:
        yield pending
    finally:
        _current.reset(token)


def pending_for(user_id: str) -> PendingInteraction | None:
    """The interaction being handled, if `user_id` started it."""
    pending = _current.get()
    return pending if pending is not None and str(pending.interaction.user.id) == user_id else None


async def acknowledge(interaction: Interaction, *, thinking: bool) -> None:
    """Answer within Discord's 3 seconds: privately 'thinking…' for commands, silently for buttons."""
    try:
        await interaction.response.defer(ephemeral=True, thinking=thinking)
    except NETWORK_ERRORS as e:
        log.warning("discord: could not acknowledge interaction %s: %s", interaction.id, e)


async def check_token(token: str) -> None:
    """Log in over REST once (`GET /users/@me`), then close the session; CredentialsError for a rejected token.

    No gateway connection: the app calls this before it loads its models, so a wrong token is reported in a
    second, not after the model has loaded.
    """
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await _log_in(http.static_login(token))
    finally:
        await http.close()


async def _log_in(login: Awaitable[object]) -> None:
    """Await a REST login: CredentialsError for a rejected token, PlatformError when Discord cannot be reached."""
    try:
        await login
    except discord.LoginFailure:
        raise CredentialsError(REJECTED) from None
    except NETWORK_ERRORS as e:
        raise platform_error(e, f"log in at {Route.BASE}") from None


def override_endpoints(*, api_url: str | None, gateway_url: str | None) -> Callable[[], None]:
    """Point discord.py at other REST and gateway URLs (tests); returns the function that undoes it.

    discord.py reads both from class attributes (`Route.BASE`, `DiscordWebSocket.DEFAULT_GATEWAY`), so the
    override is process-wide. A non-sharded `Client` never asks `GET /gateway/bot` where to connect: it
    opens `DEFAULT_GATEWAY`, then resumes at the READY payload's `resume_gateway_url`.
    """
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    if api_url:
        Route.BASE = api_url
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved

    return restore


def guard_parsers(parsers: MutableMapping[str, Callable[[Any], None]]) -> None:
    """Wrap discord.py's gateway parsers so a malformed payload is logged and dropped, never fatal."""
    for event, parse in list(parsers.items()):
        if not getattr(parse, "__scopebot_guarded__", False):
            parsers[event] = _guarded(event, parse)


def _guarded(event: str, parse: Callable[[Any], None]) -> Callable[[Any], None]:
    def guarded(data: Any) -> None:
        problem = gateway_problem(event, data)
        if problem is not None:
            log.warning("rejected a malformed %s gateway event: %s", event, problem)
            return
        try:
            parse(data)
        except Exception as e:  # noqa: BLE001 -- the gateway boundary: a parser failure must not end connect()
            log.warning("rejected a %s gateway event discord.py could not read: %s: %s", event, type(e).__name__, e)

    guarded.__scopebot_guarded__ = True  # type: ignore[attr-defined]
    return guarded


class CaseButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CUSTOM_ID_TEMPLATE):
    """A review-card button; rebuilt from its custom_id on every press, so it outlives restarts."""

    def __init__(self, spec: ButtonSpec) -> None:
        super().__init__(discord.ui.Button(label=spec.label, style=spec.style, custom_id=spec.custom_id))
        self.case_id = spec.case_id
        self.action = spec.action

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CaseButton:
        """Rebuild the button a press refers to."""
        label = getattr(item, "label", None) or match["action"]
        style = getattr(item, "style", discord.ButtonStyle.secondary)
        return cls(ButtonSpec(match.string, label, style, int(match["case"]), match["action"]))

    async def callback(self, interaction: Interaction) -> None:
        """Ask for text first when the action needs some; otherwise hand the press on."""
        client = interaction.client
        if not isinstance(client, ScopeClient):
            return
        if self.action in ARGUMENT_ACTIONS:
            await interaction.response.send_modal(ArgumentModal(client.handlers, self.case_id, self.action))
            return
        await client.handlers.on_card_press(interaction, self.case_id, self.action)


def card_view(buttons: list[ButtonSpec]) -> discord.ui.View | None:
    """A persistent view (no timeout) holding a card's buttons; None when the card has none."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for spec in buttons:
        view.add_item(CaseButton(spec))
    return view


class ArgumentModal(discord.ui.Modal):
    """Asks the moderator for the text an action needs (e.g. the phrase to block)."""

    def __init__(self, handlers: Handlers, case_id: int, action: str) -> None:
        super().__init__(title=f"Case {case_id}: {action.replace('_', ' ')}"[:45], timeout=900)
        self.handlers = handlers
        self.case_id = case_id
        self.action = action
        self.text: discord.ui.TextInput[ArgumentModal] = discord.ui.TextInput(
            label="Text", style=discord.TextStyle.short, max_length=300, required=True
        )
        self.add_item(self.text)

    async def on_submit(self, interaction: Interaction, /) -> None:
        """Hand the press on with the text typed."""
        await self.handlers.on_card_press(interaction, self.case_id, self.action, self.text.value)


def scopebot_group(handlers: Handlers) -> app_commands.Group:
    """`/scopebot ask|help|cases|audit|case`, each turned into the text the command router reads."""
    group = app_commands.Group(name="scopebot", description="Ask the bot, or work the review queue (moderators)")

    @group.command(name="ask", description="Ask the bot a question")
    @app_commands.describe(question="Your question")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await handlers.on_command(interaction, command_text("ask", question))

    @group.command(name="help", description="What the bot's commands do")
    async def help_(interaction: discord.Interaction) -> None:
        await handlers.on_command(interaction, "help")

    @group.command(name="cases", description="Open review cases (moderators)")
    async def cases(interaction: discord.Interaction) -> None:
        await handlers.on_command(interaction, "cases")

    @group.command(name="audit", description="Recent moderation actions (moderators)")
    @app_commands.describe(filters="Optional filters, as for the audit command")
    async def audit(interaction: discord.Interaction, filters: str | None = None) -> None:
        await handlers.on_command(interaction, command_text("audit", filters))

    @group.command(name="case", description="Act on a review case (moderators)")
    @app_commands.describe(case_id="The case number", action="dismiss, remove, warn, timeout, …", text="Optional text")
    async def case(interaction: discord.Interaction, case_id: int, action: str, text: str | None = None) -> None:
        await handlers.on_command(interaction, command_text("case", case_id, action, text))

    del ask, help_, cases, audit, case  # registered on the group; the names are not needed
    return group
