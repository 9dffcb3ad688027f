"""A fake Discord on 127.0.0.1: REST API and gateway websocket, for driving the real discord.py client.

It speaks just enough of Discord's protocol for the bot: HELLO/IDENTIFY/READY/GUILD_CREATE, heartbeats,
dispatches of member messages, reactions and interactions, and the REST routes the bot calls. It records
every REST call, echoes the bot's own posts back as MESSAGE_CREATE (as Discord does), and can be told
to fail chosen calls (429 with `retry_after`, 5xx, 403, 404).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = 900000000000000001
APP_ID = 900000000000000002
GUILD_ID = 800000000000000001
GENERAL = 810000000000000001
ADMISSIONS = 810000000000000002
REVIEWERS = 810000000000000003
MOD_ROLE = 830000000000000001
BOT_ROLE = 830000000000000002
TOKEN = "fake-bot-token.for-tests-only"

Json = dict[str, Any]


def user(uid: int, name: str, *, bot: bool = False) -> Json:
    """A user object."""
    return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name, "avatar": None, "bot": bot}


def member(u: Json, roles: list[int] | None = None) -> Json:
    """A guild member object for user `u`."""
    return {
        "user": u,
        "roles": [str(r) for r in roles or []],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
    }


BOT_USER = user(BOT_ID, "scopebot", bot=True)
ALICE = user(700000000000000001, "alice")
BOB_MOD = user(700000000000000002, "bob")
OTHER_BOT = user(700000000000000003, "otherbot", bot=True)
ROLES = {ALICE["id"]: [], BOB_MOD["id"]: [MOD_ROLE], OTHER_BOT["id"]: [], BOT_USER["id"]: [BOT_ROLE]}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def thread_data(thread_id: int, parent_id: int, owner: Json, name: str) -> Json:
    """A public thread under `parent_id` opened by `owner`, as THREAD_CREATE carries it."""
    return {
        "id": str(thread_id),
        "guild_id": str(GUILD_ID),
        "parent_id": str(parent_id),
        "owner_id": owner["id"],
        "name": name,
        "type": 11,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _now(),
            "locked": False,
        },
    }


@dataclass
class Call:
    """One REST request the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Failure:
    """Answer the next `times` requests matching `method` and `path` with `status`."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int = 1
    body: Json = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class FakeDiscord:
    """Discord's REST API under `/api/v10` and its gateway at `/gateway`, on one loopback port."""

    def __init__(self, *, token: str = TOKEN, identify_close_code: int | None = None) -> None:
        self.token = token
        self.identify_close_code = identify_close_code
        self.calls: list[Call] = []
        self.messages: dict[int, Json] = {}
        self.members: dict[str, Json] = {uid: member(u, ROLES[uid]) for uid, u in _users().items()}
        self.failures: list[Failure] = []
        self.stalls: list[tuple[str, re.Pattern[str], float]] = []
        self.identifies: list[Json] = []
        self.heartbeats = 0
        self.sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Server lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close every websocket and stop listening."""
        for ws in list(self.sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """The REST base, as `DISCORD_API_URL` takes it."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway, as `DISCORD_GATEWAY_URL` takes it."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment variables pointing a bot at this fake."""
        return {
            "DISCORD_TOKEN": self.token if token is None else token,
            "DISCORD_API_URL": self.api_url,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    # Test controls -------------------------------------------------------------------------------

    def fail(
        self, method: str, path: str, status: int, *, times: int = 1, retry_after: float = 0.1, code: int = 0
    ) -> None:
        """Make matching requests fail; a 429 carries `retry_after` and the `Via` header Discord sends."""
        body: Json = {"message": f"fake failure {status}", "code": code}
        headers: dict[str, str] = {}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
            headers = {"Via": "1.1 google", "Retry-After": str(retry_after)}
        self.failures.append(Failure(method, re.compile(path), status, times, body, headers))

    def stall(self, method: str, path: str, seconds: float) -> None:
        """Make the next matching request hang for `seconds` before it is served."""
        self.stalls.append((method, re.compile(path), seconds))

    async def wait_for(self, check: Callable[[], Any], seconds: float = 20.0) -> Any:
        """Wait until `check()` returns something truthy (re-checked after each request) and return it."""

        async def waiting() -> Any:
            async with self._changed:
                while not (result := check()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(waiting(), seconds)

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        """Requests made so far whose path matches `pattern` exactly."""
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    def bot_posts(self, channel_id: int) -> list[Json]:
        """Messages the bot posted in a channel (current text), in order."""
        return [
            m for m in self.messages.values() if m["channel_id"] == str(channel_id) and m["author"]["id"] == str(BOT_ID)
        ]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # Gateway -------------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a DISPATCH to every connected client."""
        self._seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_str(frame)

    async def wait_connected(self, count: int = 1) -> None:
        """Wait until `count` IDENTIFYs have been answered with READY."""
        await self.wait_for(lambda: len(self.identifies) >= count)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await ws.send_json({"op": 11, "d": None})
                elif op == 2:
                    await self._identify(ws, payload["d"])
                elif op == 6:
                    self._seq += 1
                    await ws.send_json({"op": 0, "t": "RESUMED", "s": self._seq, "d": {}})
        finally:
            self.sockets.remove(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.identify_close_code is not None:
            await ws.close(code=self.identify_close_code, message=b"Disallowed intent(s).")
            return
        self._seq += 1
        ready = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": f"session-{len(self.identifies)}",
            "resume_gateway_url": self.gateway_url,
            "shard": [0, 1],
            "application": {"id": str(APP_ID), "flags": 0},
        }
        await ws.send_json({"op": 0, "t": "READY", "s": self._seq, "d": ready})
        self._seq += 1
        await ws.send_json({"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": self.guild()})
        self.identifies.append(data)
        await self._notify()

    def guild(self) -> Json:
        """The one guild the bot is in."""

        def channel(cid: int, name: str, pos: int) -> Json:
            return {
                "id": str(cid),
                "type": 0,
                "name": name,
                "position": pos,
                "guild_id": str(GUILD_ID),
                "permission_overwrites": [],
                "nsfw": False,
                "topic": None,
                "parent_id": None,
            }

        def role(rid: int, name: str, pos: int, *, managed: bool = False) -> Json:
            tags = {"bot_id": str(BOT_ID)} if managed else {}
            return {
                "id": str(rid),
                "name": name,
                "permissions": "0",
                "position": pos,
                "color": 0,
                "hoist": False,
                "managed": managed,
                "mentionable": True,
                "flags": 0,
                "tags": tags,
            }

        return {
            "id": str(GUILD_ID),
            "name": "Northgate",
            "owner_id": BOB_MOD["id"],
            "member_count": len(self.members),
            "large": False,
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "channels": [
                channel(GENERAL, "general", 0),
                channel(ADMISSIONS, "admissions", 1),
                channel(REVIEWERS, "reviewers", 2),
            ],
            "roles": [
                role(GUILD_ID, "@everyone", 0),
                role(MOD_ROLE, "moderators", 1),
                role(BOT_ROLE, "scopebot", 2, managed=True),
            ],
            "members": [self.members[BOT_USER["id"]]],
            "threads": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "presences": [],
            "voice_states": [],
        }

    # Simulated members ---------------------------------------------------------------------------

    def _message(self, channel_id: int, author: Json, content: str, *, guild: bool = True, **extra: Any) -> Json:
        msg: Json = {
            "id": str(next(self._ids)),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild:
            msg["guild_id"] = str(GUILD_ID)
        msg.update(extra)
        self.messages[int(msg["id"])] = msg
        return msg

    async def say(
        self, author: Json, content: str, *, channel_id: int = GENERAL, mention_bot: bool = False, dm: bool = False
    ) -> Json:
        """A member posts a message (mentioning the bot with `<@id>` when asked)."""
        if mention_bot:
            content = f"<@{BOT_ID}> {content}"
        msg = self._message(channel_id, author, content, guild=not dm, mentions=[BOT_USER] if mention_bot else [])
        payload = dict(msg)
        if not dm:
            payload["member"] = {k: v for k, v in self.members[author["id"]].items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", payload)
        return msg

    async def open_thread(self, owner: Json, parent_id: int, name: str = "a question") -> int:
        """A member opens a public thread (a forum post, or a thread on a message) under a channel; its id."""
        thread_id = next(self._ids)
        await self.dispatch("THREAD_CREATE", {**thread_data(thread_id, parent_id, owner, name), "newly_created": True})
        return thread_id

    async def react(self, who: Json, message: Json, emoji: str = "🚩") -> None:
        """A member adds a reaction to a message."""
        data: Json = {
            "user_id": who["id"],
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "emoji": {"id": None, "name": emoji},
            "message_author_id": message["author"]["id"],
            "burst": False,
            "type": 0,
        }
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
            data["member"] = self.members[who["id"]]
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    def _interaction(self, kind: int, who: Json, channel_id: int, data: Json, message: Json | None = None) -> Json:
        iid = next(self._ids)
        payload: Json = {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "guild_id": str(GUILD_ID), "name": "x", "position": 0},
            "member": dict(self.members[who["id"]], permissions="0"),
            "token": f"interaction-token-{iid}",
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": 8388608,
        }
        if message is not None:
            payload["message"] = message
        if channel_id == self.dm_channel_id:  # a direct message with the bot: no guild, a user, not a member
            for key in ("guild_id", "guild_locale", "member"):
                del payload[key]
            payload["user"] = who
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [who]}
            payload["context"] = 1
        return payload

    async def press(self, who: Json, card: Json, action: str) -> Json:
        """A member presses the button of `card` whose custom_id ends with `:action`."""
        custom_id = next(
            b["custom_id"]
            for row in card["components"]
            for b in row["components"]
            if b["custom_id"].endswith(f":{action}")
        )
        payload = self._interaction(
            3, who, int(card["channel_id"]), {"custom_id": custom_id, "component_type": 2}, message=card
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def submit_modal(self, who: Json, card: Json, custom_id: str, field_id: str, value: str) -> Json:
        """A member submits the modal `custom_id`, having typed `value` into its text input `field_id`."""
        components = [{"type": 1, "components": [{"type": 4, "custom_id": field_id, "value": value}]}]
        payload = self._interaction(
            5, who, int(card["channel_id"]), {"custom_id": custom_id, "components": components}, message=card
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def command(self, who: Json, sub: str, channel_id: int = GENERAL, **options: Any) -> Json:
        """A member runs `/scopebot SUB option:value …`."""
        types = {str: 3, int: 4}
        opts = [{"name": k, "type": types[type(v)], "value": v} for k, v in options.items()]
        data = {"id": "1", "name": "scopebot", "type": 1, "options": [{"name": sub, "type": 1, "options": opts}]}
        payload = self._interaction(2, who, channel_id, data)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    # REST ----------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = await request.json() if request.can_read_body and request.content_type == "application/json" else None
        call = Call(request.method, path, dict(request.query), body)
        self.calls.append(call)
        try:
            return await self._answer(request, call)
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, call: Call) -> web.Response:
        for stall in list(self.stalls):
            if stall[0] == call.method and stall[1].fullmatch(call.path):
                self.stalls.remove(stall)
                await asyncio.sleep(stall[2])
        for f in self.failures:
            if f.times > 0 and f.method == call.method and f.path.fullmatch(call.path):
                f.times -= 1
                return _json(f.body, f.status, f.headers)
        public = call.path.startswith(("/interactions/", "/webhooks/"))
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        for method, pattern, handler in self._routes():
            m = re.fullmatch(pattern, call.path)
            if m and method == call.method:
                response: web.Response = await handler(call, *m.groups())
                return response
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._app),
            ("PUT", r"/applications/(\d+)/commands", self._commands),
            ("POST", r"/channels/(\d+)/messages", self._create),
            ("GET", r"/channels/(\d+)/messages", self._history),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._get),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete),
            ("POST", r"/users/@me/channels", self._dm),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._member),
            ("PATCH", r"/guilds/(\d+)/members/(\d+)", self._edit_member),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._followup_edit),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._no_content),
        ]

    async def _me(self, call: Call) -> web.Response:
        return _json(BOT_USER)

    async def _app(self, call: Call) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "scopebot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": BOB_MOD,
                "verify_key": "0" * 64,
                "flags": 0,
                "interactions_endpoint_url": None,
            }
        )

    async def _commands(self, call: Call, app_id: str) -> web.Response:
        out = [dict(c, id=str(next(self._ids)), application_id=app_id, version="1") for c in call.body or []]
        return _json(out)

    async def _create(self, call: Call, channel_id: str) -> web.Response:
        b = call.body or {}
        guild = int(channel_id) != self.dm_channel_id
        msg = self._message(
            int(channel_id),
            BOT_USER,
            b.get("content") or "",
            guild=guild,
            embeds=b.get("embeds") or [],
            components=b.get("components") or [],
        )
        if b.get("message_reference"):
            msg["message_reference"] = b["message_reference"]
            msg["type"] = 19
        payload = dict(msg)
        if guild:
            payload["member"] = {k: v for k, v in self.members[BOT_USER["id"]].items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", payload)  # Discord echoes the bot's own posts
        return _json(msg)

    @property
    def dm_channel_id(self) -> int:
        """The DM channel the bot opens with any member."""
        return 820000000000000001

    async def _history(self, call: Call, channel_id: str) -> web.Response:
        limit = int(call.query.get("limit", "50"))
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id and not m.get("deleted")]
        return _json(sorted(found, key=lambda m: -int(m["id"]))[:limit])

    async def _get(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        msg = self.messages.get(int(message_id))
        if msg is None or msg.get("deleted"):
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(msg)

    async def _edit(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        msg = self.messages.get(int(message_id))
        if msg is None or msg.get("deleted"):
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        for key in ("content", "embeds", "components"):
            if call.body is not None and key in call.body:
                msg[key] = call.body[key] if call.body[key] is not None else ([] if key != "content" else "")
        msg["edited_timestamp"] = _now()
        return _json(msg)

    async def _delete(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        msg = self.messages.get(int(message_id))
        if msg is None or msg.get("deleted"):
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        msg["deleted"] = True
        return web.Response(status=204)

    async def _dm(self, call: Call) -> web.Response:
        rid = str((call.body or {}).get("recipient_id"))
        recipient = next((m["user"] for m in self.members.values() if m["user"]["id"] == rid), user(int(rid), "x"))
        return _json({"id": str(self.dm_channel_id), "type": 1, "recipients": [recipient], "last_message_id": None})

    async def _member(self, call: Call, guild_id: str, user_id: str) -> web.Response:
        m = self.members.get(user_id)
        return _json(m) if m else _json({"message": "Unknown Member", "code": 10007}, 404)

    async def _edit_member(self, call: Call, guild_id: str, user_id: str) -> web.Response:
        m = self.members.get(user_id)
        if m is None:
            return _json({"message": "Unknown Member", "code": 10007}, 404)
        m.update(call.body or {})
        return _json(m)

    async def _callback(self, call: Call, interaction_id: str, token: str) -> web.Response:
        kind = (call.body or {}).get("type")
        resource: Json | None = None
        if kind == 4:
            data = (call.body or {}).get("data") or {}
            resource = {
                "type": 4,
                "message": self._message(0, BOT_USER, data.get("content", ""), flags=data.get("flags", 0)),
            }
        out: Json = {
            "interaction": {
                "id": interaction_id,
                "type": 3,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": True,
            }
        }
        if resource is not None:
            out["resource"] = resource
        return _json(out)

    async def _followup(self, call: Call, app_id: str, token: str) -> web.Response:
        b = call.body or {}
        return _json(self._message(0, BOT_USER, b.get("content") or "", flags=b.get("flags", 0), webhook_id=app_id))

    async def _followup_edit(self, call: Call, app_id: str, token: str, message_id: str) -> web.Response:
        b = call.body or {}
        return _json(self._message(0, BOT_USER, b.get("content") or "", webhook_id=app_id))

    async def _no_content(self, call: Call, *args: str) -> web.Response:
        return web.Response(status=204)


def _users() -> dict[str, Json]:
    return {u["id"]: u for u in (ALICE, BOB_MOD, OTHER_BOT, BOT_USER)}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly `application/json`, as discord.py requires."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json", **(headers or {})}
    )
