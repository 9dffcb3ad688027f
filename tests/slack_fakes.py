"""A fake Slack on 127.0.0.1 for driving the real slack-bolt / slack_sdk: Web API, Socket Mode and hooks.

- Web API: GET and POST on /api/{method}; every call is recorded; failures can be queued per method.
- Socket Mode: `apps.connections.open` returns ws://127.0.0.1:PORT/link; `deliver()` sends an envelope
  and returns the client's acknowledgement.
- response_url hooks: POST /hooks/{id} is recorded.
- `signed_post()` sends an Events API or interactivity request signed like Slack signs them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

from adapters.slack import SlackAdapter
from adapters.slack_settings import SlackSettings
from bot.events import Event

TEAM = "T0TEAM"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    args: dict[str, Any]
    http_method: str


@dataclass
class Failure:
    """A queued failure for one method: an HTTP status (e.g. 429, 500) or a Slack error code."""

    status: int = 200
    error: str = ""
    retry_after: int | None = None
    channel: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Seconds to hang before answering (a slow or stuck Slack).
    delay: float = 0.0


class FakeSlack:
    """The fake servers; `async with FakeSlack() as slack:` starts and closes them."""

    def __init__(self, *, usergroups: Mapping[str, list[str]] | None = None) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, list[Failure]] = {}
        #: channel -> ts -> message (as conversations.history returns it)
        self.messages: dict[str, dict[str, dict[str, Any]]] = {}
        self.hooks: list[dict[str, Any]] = []
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.connected = asyncio.Event()
        self.connections_opened = 0
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link", self._socket)
        app.router.add_post("/hooks/{hook}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self.sockets):
            await ws.close()
        for fut in self.acks.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What to put in SLACK_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/"

    def hook_url(self, name: str = "") -> str:
        """A response_url that lands in `self.hooks`."""
        return f"http://127.0.0.1:{self.port}/hooks/{name or uuid.uuid4().hex[:8]}"

    # Test helpers ---------------------------------------------------------------------------

    def fail(self, method: str, failure: Failure, *, times: int = 1) -> None:
        """Make the next `times` calls of `method` fail this way."""
        self.failures.setdefault(method, []).extend([failure] * times)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """Arguments of every recorded call of `method`, in order."""
        return [c.args for c in self.calls if c.method == method]

    def next_ts(self) -> str:
        """A fresh message timestamp."""
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def add_message(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> str:
        """Store a member's message (as if they had posted it) and return its ts."""
        ts = self.next_ts()
        msg: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.messages.setdefault(channel, {})[ts] = msg
        return ts

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """A stored message."""
        return self.messages.get(channel, {}).get(ts)

    def bot_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The bot's messages (current state), in posting order."""
        out = []
        for ch, msgs in self.messages.items():
            if channel is None or ch == channel:
                out.extend(m | {"channel": ch} for m in msgs.values() if m.get("bot_id") == BOT_ID)
        return sorted(out, key=lambda m: float(m["ts"]))

    async def wait_for(self, predicate: Callable[[], Any], *, within: float = 30.0, what: str = "condition") -> Any:
        """Poll `predicate` until it returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                recent = [(c.method, {k: str(v)[:80] for k, v in c.args.items()}) for c in self.calls[-6:]]
                raise AssertionError(
                    f"timed out waiting for {what}; calls: {[c.method for c in self.calls]}; last: {recent}"
                )
            await asyncio.sleep(0.02)

    async def deliver(self, envelope_type: str, payload: dict[str, Any], *, within: float = 10.0) -> dict[str, Any]:
        """Send a Socket Mode envelope to the connected client and return its acknowledgement."""
        await asyncio.wait_for(self.connected.wait(), within)
        ws = next(w for w in reversed(self.sockets) if not w.closed)
        envelope_id = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[envelope_id] = fut
        await ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": envelope_type != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        try:
            return await asyncio.wait_for(fut, within)
        finally:
            self.acks.pop(envelope_id, None)

    # Servers --------------------------------------------------------------------------------

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append({"hook": request.match_info["hook"], **json.loads(await request.text())})
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}})
        self.connected.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self.acks.get(data.get("envelope_id", ""))
            if fut is not None and not fut.done():
                fut.set_result(data)
        return ws

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        raw = await request.text()
        if raw:
            if request.content_type == "application/json":
                args.update(json.loads(raw))
            else:
                args.update(dict(parse_qsl(raw, keep_blank_values=True)))
        self.calls.append(Call(method, args, request.method))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        queued = self.failures.get(method) or []
        for i, f in enumerate(queued):
            if f.channel is None or f.channel == args.get("channel"):
                queued.pop(i)
                if f.delay:
                    await asyncio.sleep(f.delay)
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                if f.status != 200:
                    return web.json_response(
                        {"ok": False, "error": f.error or "http"}, status=f.status, headers=headers
                    )
                return web.json_response({"ok": False, "error": f.error, **f.extra}, headers=headers)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args)
        return web.json_response(result)

    # Web API methods ------------------------------------------------------------------------

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "team": "Test Team",
            "team_id": TEAM,
            "user": "scopebot",
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        self.connections_opened += 1
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link?ticket={uuid.uuid4().hex}"}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel.startswith("U"):
            channel = "D" + channel[1:]
        ts = self.next_ts()
        msg: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": args.get("text", ""),
            "ts": ts,
        }
        for key in ("thread_ts", "blocks"):
            if args.get(key):
                msg[key] = args[key] if key != "blocks" or isinstance(args[key], list) else json.loads(args[key])
        msg["edits"] = []
        self.messages.setdefault(channel, {})[ts] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": msg}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        msg = self.message(str(args.get("channel")), str(args.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg.get("bot_id") != BOT_ID:
            return {"ok": False, "error": "cant_update_message"}
        msg["edits"].append(msg["text"])
        msg["text"] = args.get("text", "")
        if "blocks" in args:
            msg["blocks"] = args["blocks"] if isinstance(args["blocks"], list) else json.loads(args["blocks"])
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        msg = self.message(channel, ts)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg.get("bot_id") != BOT_ID:
            return {"ok": False, "error": "cant_delete_message"}
        del self.messages[channel][ts]
        return {"ok": True, "channel": channel, "ts": ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self.next_ts()}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), str(args.get("message_ts", ""))
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _window(self, channel: str, args: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        if channel not in self.messages:
            return {"ok": False, "error": "channel_not_found"}
        lo, hi = float(args.get("oldest") or 0), float(args.get("latest") or 9e12)
        found = [m for m in self.messages[channel].values() if lo <= float(m["ts"]) <= hi and keep(m)]
        found = [{k: v for k, v in m.items() if k != "edits"} for m in found]
        return {"ok": True, "messages": sorted(found, key=lambda m: -float(m["ts"])), "has_more": False}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._window(str(args.get("channel")), args, lambda m: m.get("thread_ts", m["ts"]) == m["ts"])

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        # Like Slack, `ts` may name the thread's parent or any reply in it.
        named = self.message(str(args.get("channel")), str(args.get("ts")))
        thread = str(named.get("thread_ts", named["ts"])) if named else str(args.get("ts"))
        return self._window(str(args.get("channel")), args, lambda m: m.get("thread_ts", m["ts"]) == thread)

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.usergroups[group]}


# Signed requests (HTTP Events API) ----------------------------------------------------------------


def signature(body: str, *, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's v0 request signature."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def signed_post(
    session: aiohttp.ClientSession,
    url: str,
    body: str,
    *,
    form: bool = False,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
) -> aiohttp.ClientResponse:
    """POST `body` as Slack does: JSON for events, form-encoded for interactivity and commands."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(body, timestamp=ts, secret=secret),
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
    }
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        await resp.read()
        return resp


def event_body(event: dict[str, Any], *, event_id: str | None = None, team: str = TEAM) -> dict[str, Any]:
    """An Events API `event_callback` wrapping `event`."""
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}],
    }


def mention(
    text: str, *, user: str = "UMEMBER", channel: str = "CGENERAL", ts: str, thread_ts: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An `app_mention` event."""
    ev: dict[str, Any] = {
        **extra,
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
    return ev


def message(
    text: str, *, user: str = "UMEMBER", channel: str = "CGENERAL", ts: str, channel_type: str = "channel", **extra: Any
) -> dict[str, Any]:
    """A `message` event."""
    return {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
        **extra,
    }


def reaction(name: str, *, user: str, channel: str, ts: str, item_user: str = "UMEMBER") -> dict[str, Any]:
    """A `reaction_added` event."""
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": name,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def block_actions(
    *,
    user: str,
    action_id: str,
    value: str,
    channel: str,
    message_ts: str,
    note: str | None = None,
    response_url: str = "",
) -> dict[str, Any]:
    """A `block_actions` payload for a button press on a message."""
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": TEAM, "domain": "test"},
        "channel": {"id": channel, "name": "reviewers"},
        "message": {"type": "message", "ts": message_ts, "user": BOT_USER, "bot_id": BOT_ID, "text": "card"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": f"{time.time():.6f}",
                "text": {"type": "plain_text", "text": "x"},
            }
        ],
    }
    if note is not None:
        body["state"] = {"values": {"scopebot:note:1:abc": {"note": {"type": "plain_text_input", "value": note}}}}
    return body


def interactivity_form(payload: dict[str, Any]) -> str:
    """The form body Slack POSTs for interactivity: `payload=<json>`."""
    return urlencode({"payload": json.dumps(payload)})


def command_form(
    text: str, *, user: str = "UMEMBER", channel: str = "CGENERAL", response_url: str = ""
) -> dict[str, str]:
    """The fields of a `/scopebot` slash command."""
    return {
        "token": "legacy",
        "team_id": TEAM,
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/scopebot",
        "text": text,
        "api_app_id": "A0APP",
        "response_url": response_url,
        "trigger_id": "1.2.3",
    }


# A started adapter ---------------------------------------------------------------------------------


@dataclass
class Served:
    """A started HTTP-mode adapter, its fake Slack, a client session, and the events that reached the core."""

    adapter: SlackAdapter
    slack: FakeSlack
    http: aiohttp.ClientSession
    events: list[Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The adapter's events endpoint."""
        return f"http://127.0.0.1:{self.adapter.port}/slack/events"

    async def post_event(self, event: dict[str, Any], **kw: Any) -> aiohttp.ClientResponse:
        """POST a signed `event_callback` wrapping `event`."""
        return await signed_post(self.http, self.url, json.dumps(event_body(event, **kw)))

    async def post_form(self, body: str) -> aiohttp.ClientResponse:
        """POST a signed form body (interactivity, slash commands)."""
        return await signed_post(self.http, self.url, body, form=True)

    async def wait_events(self, n: int) -> list[Event]:
        """Wait until `n` events reached the sink."""
        await self.slack.wait_for(lambda: len(self.events) >= n, within=10, what=f"{n} events")
        return self.events


def http_settings(slack: FakeSlack, **overrides: Any) -> SlackSettings:
    """HTTP-mode settings pointing at the fake, on a free port."""
    base = SlackSettings(
        bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url, host="127.0.0.1", port=0
    )
    return replace(base, **overrides)


@asynccontextmanager
async def serve_http(
    slack: FakeSlack, *, adapter: SlackAdapter | None = None, **overrides: Any
) -> AsyncIterator[Served]:
    """Start an HTTP-mode adapter whose sink records events; stop it afterwards."""
    async with aiohttp.ClientSession() as http:
        adapter = adapter or SlackAdapter(http_settings(slack, **overrides))
        served = Served(adapter, slack, http)

        async def sink(event: Event) -> None:
            served.events.append(event)

        await adapter.start(sink)
        try:
            yield served
        finally:
            await adapter.stop()
