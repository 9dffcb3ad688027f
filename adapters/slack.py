"""The Slack adapter: slack-bolt's `AsyncApp` over Socket Mode or the HTTP Events API, as a `Platform`.

It only translates (see `adapters.slack_edge`) and calls the Web API; every decision is the core's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters import slack_cards as cards
from adapters import slack_edge as edge
from adapters import slack_errors as errors
from adapters.slack_settings import SlackSettings, settings_from_env
from adapters.slack_transport import HealthCheck, HttpTransport, SocketTransport, Transport, web_client
from bot.cli import CredentialsError
from bot.config import Config
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

log = logging.getLogger(__name__)

#: chat.update is a Tier 3 method (about 50 calls a minute per workspace): one edit per 1.5 s per
#: answer leaves room for a few answers streaming at once. Slack truncates text past 40,000 characters
#: and asks for at most 4,000; 3,800 leaves room for the `&amp;` escapes added on the way out.
SLACK_LIMITS = PlatformLimits(max_message_chars=3800, edit_interval=1.5, supports_edit=True)
#: A slash command's or button's `response_url` works for 30 minutes (we stop a little earlier).
RESPONSE_URL_SECONDS = 25 * 60
#: Event ids remembered to drop Slack's redeliveries of an event already handled.
SEEN_EVENTS = 2000


class SlackAdapter:
    """A `Platform` on one Slack workspace."""

    name = edge.PLATFORM
    limits = SLACK_LIMITS

    def __init__(self, settings: SlackSettings, *, drain_seconds: float = 10.0, groups_ttl: float = 300.0) -> None:
        self.settings = settings
        self.client = web_client(settings)
        self.bot_user_id = ""
        self.bot_id = ""
        self.team_id = ""
        self._drain = drain_seconds
        self._groups_ttl = groups_ttl
        self._groups: tuple[float, frozenset[str]] | None = None
        self._sink: EventSink | None = None
        self._credentials_checked = False
        self._bolt: AsyncApp | None = None
        self._transport: Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._response_urls: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        #: The bot's health document for GET /healthz in HTTP mode; the app sets it (`bot.ops`).
        self.health: HealthCheck | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], config: Config) -> SlackAdapter:
        """The adapter for the `SLACK_*` variables; a missing or malformed token raises `CredentialsError`."""
        return cls(settings_from_env(env, config))

    @property
    def mode(self) -> str:
        """`socket` or `http`."""
        return self.settings.mode

    @property
    def port(self) -> int | None:
        """The HTTP port actually listened on (HTTP mode, once started)."""
        return self._transport.port if isinstance(self._transport, HttpTransport) else None

    @property
    def connected(self) -> bool:
        """Whether Slack's events can reach the bot now (Socket Mode open, or the HTTP server listening)."""
        return self._transport is not None and self._transport.connected

    async def _health_document(self) -> tuple[int, dict[str, Any]]:
        if self.health is not None:
            return await self.health()
        return (200 if self.connected else 503), {"ok": self.connected, "platform": "slack", "mode": self.mode}

    # Lifecycle ---------------------------------------------------------------------------------

    async def check_credentials(self) -> None:
        """Ask Slack who the token belongs to (`auth.test`); CredentialsError when Slack rejects it.

        The app calls this before it loads its models, so a wrong token is reported in a second, not after
        the model has loaded; `start` calls it too when nobody did.
        """
        try:
            auth = await self.client.auth_test()
        except SlackApiError as e:
            error = str(e.response.get("error", "")) if isinstance(e.response.data, dict) else ""
            if error in errors.AUTH:
                raise CredentialsError(
                    f"SLACK_BOT_TOKEN was rejected by Slack ({error}); set a valid bot token"
                ) from None
            raise PlatformError(f"Slack auth.test failed: {error or e.response.status_code}") from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PlatformError(f"cannot reach the Slack Web API at {self.client.base_url}: {e}") from None
        self.bot_user_id = str(auth.get("user_id") or "")
        self.bot_id = str(auth.get("bot_id") or "")
        self.team_id = str(auth.get("team_id") or "")
        self._credentials_checked = True

    async def start(self, sink: EventSink) -> None:
        """Check the token, then listen (Socket Mode or HTTP); returns once events can arrive."""
        self._sink = sink
        if not self._credentials_checked:
            await self.check_credentials()
        self._bolt = self._build_bolt()
        if self.settings.mode == "socket":
            assert self.settings.app_token is not None
            self._transport = SocketTransport(self._bolt, app_token=self.settings.app_token, client=self.client)
        else:
            self._transport = HttpTransport(
                self._bolt,
                host=self.settings.host,
                port=self.settings.port,
                signing_secret=self.settings.signing_secret or "",
                health=self._health_document,
            )
        await self._transport.start()
        log.info("slack: connected as %s in team %s (%s mode)", self.bot_user_id, self.team_id, self.mode)

    async def stop(self) -> None:
        """Stop taking events, give in-flight handlers `drain_seconds` to finish, cancel the rest."""
        self._credentials_checked = False  # a later start asks again
        if self._transport is not None:
            await self._transport.stop()
            self._transport = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self._drain)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    def _build_bolt(self) -> AsyncApp:
        http = self.settings.mode == "http"
        app = AsyncApp(
            name="scopebot",
            client=self.client,
            signing_secret=self.settings.signing_secret or "",
            request_verification_enabled=http,
            process_before_response=False,
            # Without a logger of its own, bolt copies the root's level into its loggers when the app is built, so
            # a level set later never reached them; with this one (level unset) they follow "slack_bolt" and the
            # root at each line, as `setup_logging` sets them.
            logger=logging.getLogger("slack_bolt.scopebot"),
        )
        for event_type in edge.EVENT_TYPES:
            app.event(event_type)(self._on_event)
        # Everything else subscribed (edits, joins, …) is acknowledged, so Slack does not redeliver it.
        app.event(re.compile(".*"))(self._on_other)
        app.command(edge.COMMAND)(self._on_command)
        app.action(re.compile("^" + re.escape(cards.ACTION_PREFIX)))(self._on_action)
        app.action(re.compile(".*"))(self._on_other_action)
        return app

    # Inbound -----------------------------------------------------------------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        event_id = body.get("event_id")
        if isinstance(event_id, str) and self._already_seen(event_id):
            log.debug("slack: dropped redelivered event %s", event_id)
            return
        self._translate_and_deliver(
            "event", lambda: edge.event_to_core(body, bot_user_id=self.bot_user_id, bot_id=self.bot_id)
        )

    async def _on_other(self, body: dict[str, Any]) -> None:
        event = body.get("event")
        log.debug("slack: ignored event %s", event.get("type") if isinstance(event, dict) else None)

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        self._remember_response_url(body, channel=body.get("channel_id"), user=body.get("user_id"))
        self._translate_and_deliver("slash command", lambda: edge.command_to_event(body))

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        channel, user = body.get("channel"), body.get("user")
        self._remember_response_url(
            body,
            channel=channel.get("id") if isinstance(channel, dict) else None,
            user=user.get("id") if isinstance(user, dict) else None,
        )
        self._translate_and_deliver("button press", lambda: cards.block_action_to_event(body))

    async def _on_other_action(self, ack: AsyncAck) -> None:
        await ack()

    def _translate_and_deliver(self, what: str, translate: Callable[[], Event | edge.Ignored]) -> None:
        try:
            event: Event | edge.Ignored = translate()
        except edge.SlackPayloadError as e:
            log.warning("slack: rejected a malformed %s: %s", what, e)
            return
        if isinstance(event, edge.Ignored):
            log.debug("slack: ignored %s: %s", what, event.reason)
            return
        sink = self._sink
        if sink is None:
            return

        async def handle() -> None:
            await sink(event)

        # Tracked, so stop() can let handlers finish and nothing is garbage-collected mid-answer.
        task = asyncio.create_task(handle(), name=f"slack-{type(event).__name__}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack: event handler failed", exc_info=task.exception())

    def _already_seen(self, event_id: str) -> bool:
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        while len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        return False

    def _remember_response_url(self, body: Mapping[str, Any], *, channel: object, user: object) -> None:
        url = body.get("response_url")
        if isinstance(url, str) and url and isinstance(channel, str) and isinstance(user, str):
            key = (channel, user)
            self._response_urls.pop(key, None)
            self._response_urls[key] = (url, time.monotonic())
            while len(self._response_urls) > 1000:
                self._response_urls.popitem(last=False)

    # Web API -----------------------------------------------------------------------------------

    async def _call(self, method: str, where: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        """Await one Web API call; any failure becomes a logged `PlatformError` that says what and where."""
        try:
            return await call
        except SlackApiError as e:
            data = e.response.data if isinstance(e.response.data, dict) else {}
            problem = errors.describe_api_error(
                method,
                where,
                error=str(data.get("error", "")),
                status=e.response.status_code,
                needed=str(data.get("needed", "")),
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            problem = errors.ApiProblem(f"Slack {method} failed ({where}): {type(e).__name__} {e}".strip(), True, None)
        log.warning("%s", problem.text)
        raise PlatformError(problem.text, retryable=problem.retryable, status=problem.status)

    async def send(self, message: OutboundMessage) -> MessageRef:
        """chat.postMessage, in the thread of `reply_to` when given."""
        trusted = message.place.channel in self.settings.reviewer_channels
        args = edge.post_args(message, ping=self.settings.escalation_mention if trusted else "")
        resp = await self._call(
            "chat.postMessage", f"channel {message.place.channel}", self.client.chat_postMessage(**args)
        )
        return edge.sent_ref(
            message.place, resp.data if isinstance(resp.data, dict) else {}, thread=args.get("thread_ts")
        )

    async def edit(self, ref: MessageRef, text: str) -> None:
        """chat.update with new text."""
        where = f"channel {ref.place.channel}, message {ref.message_id}"
        await self._call("chat.update", where, self.client.chat_update(**edge.update_args(ref, text)))

    async def delete(self, ref: MessageRef) -> None:
        """chat.delete (Slack lets a bot token delete only the bot's own messages)."""
        where = f"channel {ref.place.channel}, message {ref.message_id}"
        await self._call("chat.delete", where, self.client.chat_delete(channel=ref.place.channel, ts=ref.message_id))

    async def fetch_message(self, ref: MessageRef) -> FetchedMessage | None:
        """The message from conversations.history (or .replies inside a thread), with its permalink."""
        channel, ts = ref.place.channel, ref.message_id
        where = f"channel {channel}, message {ts}"
        window: dict[str, Any] = {"channel": channel, "latest": ts, "oldest": ts, "inclusive": True, "limit": 1}
        try:
            resp = await self._call("conversations.history", where, self.client.conversations_history(**window))
            found = _with_ts(resp, ts)
            if found is None:
                thread = ref.place.thread or ts
                resp = await self._call(
                    "conversations.replies", where, self.client.conversations_replies(**window | {"ts": thread})
                )
                found = _with_ts(resp, ts)
        except PlatformError as e:
            if e.status == 404:
                return None
            raise
        if found is None:
            return None
        permalink: str | None = None
        try:
            link = await self._call(
                "chat.getPermalink", where, self.client.chat_getPermalink(channel=channel, message_ts=ts)
            )
            permalink = str(link.get("permalink") or "") or None
        except PlatformError:
            permalink = None
        return edge.fetched(ref, found, permalink=permalink)

    async def post_review_card(self, card: ReviewCard, *, existing: MessageRef | None = None) -> MessageRef:
        """A Block Kit card with buttons; `existing` is updated in place (re-posted if it was deleted)."""
        channel = existing.place.channel if existing is not None else card.place.channel
        where = f"reviewer channel {channel}, case {card.case_id}"
        try:
            if existing is not None:
                try:
                    await self._call(
                        "chat.update", where, self.client.chat_update(**cards.card_args(card, existing=existing))
                    )
                    return existing
                except PlatformError as e:
                    if e.status != 404:
                        raise
            args = cards.card_args(card)
            resp = await self._call("chat.postMessage", where, self.client.chat_postMessage(**args))
        except PlatformError as e:
            # The router tells the operator, once, what to fix (`report_problem`); this is the detail.
            log.debug("slack: cannot post review cards to channel %s: %s", channel, e)
            raise
        return edge.sent_ref(card.place, resp.data if isinstance(resp.data, dict) else {}, thread=None)

    async def find_review_card(self, place: Place, case_id: int) -> MessageRef | None:
        """The card this bot already posted for `case_id` in `place` (recent history), so none is posted twice."""
        where = f"reviewer channel {place.channel}, case {case_id}"
        try:
            resp = await self._call(
                "conversations.history", where, self.client.conversations_history(channel=place.channel, limit=200)
            )
        except PlatformError as e:
            if e.status == 404:
                return None
            raise
        for message in resp.get("messages") or []:
            if isinstance(message, dict) and cards.is_card_for(
                message, case_id, bot_id=self.bot_id, bot_user_id=self.bot_user_id
            ):
                return MessageRef(place, str(message["ts"]))
        return None

    async def reply_privately(self, reply: Reply) -> None:
        """The command's or button's response_url when fresh, else chat.postEphemeral, else a direct message."""
        key = (reply.place.channel, reply.user_id)
        url_and_time = self._response_urls.get(key)
        fresh = url_and_time is not None and time.monotonic() - url_and_time[1] < RESPONSE_URL_SECONDS
        if fresh and url_and_time is not None and await self._respond(url_and_time[0], reply):
            return
        where = f"channel {reply.place.channel}, user {reply.user_id}"
        try:
            await self._call("chat.postEphemeral", where, self.client.chat_postEphemeral(**edge.ephemeral_args(reply)))
            return
        except PlatformError as e:
            if e.status not in (403, 404):
                raise
        direct = OutboundMessage(Place(edge.PLATFORM, reply.place.workspace, reply.user_id, is_direct=True), reply.text)
        await self.send(direct)

    async def _respond(self, url: str, reply: Reply) -> bool:
        hook = AsyncWebhookClient(url, timeout=self.settings.api_timeout, retry_handlers=self.client.retry_handlers)
        try:
            resp = await hook.send(text=edge.escape(reply.text), response_type="ephemeral", replace_original=False)
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("slack: response_url reply to %s failed: %s", reply.user_id, type(e).__name__)
            return False
        if resp.status_code != 200:
            log.warning("slack: response_url reply to %s failed: HTTP %s", reply.user_id, resp.status_code)
            return False
        return True

    async def timeout_member(self, place: Place, user_id: str, *, until: datetime, reason: str) -> bool:
        """Slack has no member timeouts; the core stops answering the member instead."""
        return False

    async def is_moderator(self, actor: Actor, *, place: Place) -> bool | None:
        """Membership of the configured moderator user groups (cached); None when none are configured."""
        if not self.settings.moderator_groups or actor.platform != edge.PLATFORM:
            return None
        members = await self._group_members()
        if members is None:
            return None
        return actor.user_id in members

    async def _group_members(self) -> frozenset[str] | None:
        now = time.monotonic()
        if self._groups is not None and now - self._groups[0] < self._groups_ttl:
            return self._groups[1]
        users: set[str] = set()
        for group in self.settings.moderator_groups:
            try:
                resp = await self._call(
                    "usergroups.users.list", f"user group {group}", self.client.usergroups_users_list(usergroup=group)
                )
            except PlatformError:
                # Keep the last known members rather than locking every moderator out.
                return self._groups[1] if self._groups is not None else None
            users.update(str(u) for u in resp.get("users") or [])
        self._groups = (now, frozenset(users))
        return self._groups[1]


def _with_ts(resp: AsyncSlackResponse, ts: str) -> dict[str, Any] | None:
    messages = resp.get("messages") or []
    return next((m for m in messages if isinstance(m, dict) and m.get("ts") == ts), None)
