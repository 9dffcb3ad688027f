"""How the adapter talks to Slack: the Web API client, and Socket Mode or an HTTP server for incoming requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_errors import AUTH
from adapters.slack_screen import request_problem, screen_body
from adapters.slack_settings import EVENTS_PATH, HEALTH_PATH, SlackSettings
from bot.cli import CredentialsError
from bot.events import PlatformError

log = logging.getLogger(__name__)

#: Seconds to wait for the first Socket Mode connection before giving up on starting.
CONNECT_TIMEOUT = 30.0

#: The bot's health document and HTTP status (`bot.ops.Ops.health`), served at GET /healthz.
HealthCheck = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def web_client(settings: SlackSettings) -> AsyncWebClient:
    """The Web API client: `SLACK_API_URL` as base, 429s retried after Retry-After, 5xx and resets retried."""
    handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]
    kwargs: dict[str, Any] = {"token": settings.bot_token, "timeout": settings.api_timeout, "retry_handlers": handlers}
    if settings.api_url:
        kwargs["base_url"] = settings.api_url
    return AsyncWebClient(**kwargs)


class Transport(Protocol):
    """Delivers Slack's requests to the bolt app until stopped."""

    async def start(self) -> None:
        """Begin receiving; returns once connected or listening."""

    async def stop(self) -> None:
        """Stop receiving and release every socket and task."""

    @property
    def connected(self) -> bool:
        """Whether requests can arrive now."""


class HttpTransport:
    """The HTTP Events API: POST /slack/events (events and interactivity), GET /healthz."""

    def __init__(self, bolt: AsyncApp, *, host: str, port: int, signing_secret: str, health: HealthCheck) -> None:
        self._bolt = bolt
        self._health_check = health
        self._host = host
        self._requested_port = port
        self._verifier = SignatureVerifier(signing_secret)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, see `.port`)."""
        app = web.Application()
        app.router.add_post(EVENTS_PATH, self._events)
        app.router.add_get(HEALTH_PATH, self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise PlatformError(
                f"cannot listen for Slack events on {self._host}:{self._requested_port}: {e.strerror} "
                "(set SCOPEBOT_PORT to a free port)",
                retryable=False,
            ) from None
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._requested_port
        log.info("slack: listening for events on http://%s:%s%s", self._host, self.port, EVENTS_PATH)

    async def stop(self) -> None:
        """Close the listening socket and finish open requests."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def connected(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    async def _health(self, request: web.Request) -> web.Response:
        status, doc = await self._health_check()
        return web.json_response(doc, status=status)

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.text()
        payload, problem = screen_body(body, request.content_type)
        if payload is None:
            # Bolt would raise on it (a 500, and Slack retries); say why only to a correctly signed sender.
            headers = {k.lower(): v for k, v in request.headers.items()}
            if not self._verifier.is_valid_request(body, headers):
                return web.Response(status=401, text="invalid signature")
            log.warning("slack: rejected a signed request: %s", problem)
            return web.Response(status=400, text="malformed body")
        bolt_request = await to_bolt_request(request)
        if bolt_request.body != payload:
            # Bolt takes any form body containing the word "payload" for an interactivity payload, so a
            # slash command asking about a "payload" reached it empty; hand it the form as it is.
            bolt_request.body = payload
            bolt_request.context = build_async_context(AsyncBoltContext(), payload)
        response = await self._bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)


class ScreenedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, refusing envelopes whose payload bolt could not read."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Acknowledge and drop a malformed payload (logged once); hand anything else to bolt."""
        problem = request_problem(req.payload)
        if problem is None:
            await super().handle(client, req)
            return
        log.warning("slack: rejected a Socket Mode %s envelope: %s", str(req.type)[:40], problem)
        # Acknowledged, so Slack does not deliver it again.
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


class SocketTransport:
    """Socket Mode: a WebSocket that Slack opens for us with `apps.connections.open`."""

    def __init__(self, bolt: AsyncApp, *, app_token: str, client: AsyncWebClient) -> None:
        self._bolt = bolt
        self._app_token = app_token
        self._client = client
        self._handler: AsyncSocketModeHandler | None = None

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open and answering pings (false while the client reconnects)."""
        if self._handler is None:
            return False
        client = self._handler.client
        session = client.current_session
        return not client.closed and not client.stale and session is not None and not session.closed

    async def start(self) -> None:
        """Check the app-level token, then connect; returns once the WebSocket is open."""
        handler = ScreenedSocketModeHandler(self._bolt, app_token=self._app_token, web_client=self._client)
        self._handler = handler
        try:
            # Asking for the URL ourselves surfaces a bad token at once (the client would retry forever).
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
            await asyncio.wait_for(handler.connect_async(), timeout=CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
        except SlackApiError as e:
            await self.stop()
            data = e.response.data if isinstance(e.response.data, dict) else {}
            error = str(data.get("error", "")) or f"HTTP {e.response.status_code}"
            if error in AUTH:
                raise CredentialsError(
                    f"SLACK_APP_TOKEN was rejected by Slack ({error}); create an app-level token with the "
                    "connections:write scope"
                ) from None
            raise PlatformError(f"Slack apps.connections.open failed: {error}") from None
        except TimeoutError:
            await self.stop()
            raise PlatformError(f"could not open a Socket Mode connection within {CONNECT_TIMEOUT:.0f} s") from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the WebSocket and the client's session, and wait for its tasks to end."""
        handler, self._handler = self._handler, None
        if handler is None:
            return
        client = handler.client
        await handler.close_async()  # type: ignore[no-untyped-call]
        tasks = [t for t in (client.message_processor, client.current_session_monitor, client.message_receiver) if t]
        # close() cancels these without waiting; wait, so no task outlives the adapter.
        await asyncio.gather(*tasks, return_exceptions=True)
