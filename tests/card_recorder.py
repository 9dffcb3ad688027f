"""A loopback HTTP "platform" that records every card post, shared by several bot processes, and can kill them.

The crash and multi-process tests need a platform that outlives the processes it serves: this server runs
in the test process, the bots reach it over HTTP (see `tests/recorder_platform.py`), and every card post
is logged with the process that made it. A kill plan SIGKILLs the calling process at a chosen moment of a
chosen request: before the platform stores anything, after it stored the card but before it answers, or
just after it answered (while the bot records the result).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class KillPlan:
    """Kill the process that makes the `nth` request of `kind` (post_card, update_card, find_card, fetch, private)."""

    kind: str
    #: before: nothing stored; stored: stored, no answer; replied: answered, then killed within `delay` seconds.
    phase: str
    nth: int = 1
    delay: float = 0.02
    fired: bool = False
    seen: int = 0


@dataclass
class Recorder:
    """What the fake platform holds; guarded by one lock."""

    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every new card post: (case_id, card id, pid).
    posts: list[tuple[int, str, int]] = field(default_factory=list)
    #: `time.monotonic()` of each post in `posts` (for benchmarks).
    post_times: list[float] = field(default_factory=list)
    updates: int = 0
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    private: list[dict[str, Any]] = field(default_factory=list)
    plan: KillPlan | None = None
    #: Seconds each card request takes, so several processes overlap.
    latency: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    kills: list[tuple[str, str, int]] = field(default_factory=list)

    def new_id(self) -> str:
        return str(next(self.ids))

    def add_message(self, channel: str, author: str, text: str) -> str:
        """A member's message, as if posted on the platform."""
        with self.lock:
            mid = self.new_id()
            self.messages[mid] = {"id": mid, "channel": channel, "author": author, "text": text, "deleted": False}
            return mid

    def posts_per_case(self) -> dict[int, int]:
        """How many times each case's card was posted (not updated)."""
        counts: dict[int, int] = {}
        for case_id, _card, _pid in self.posts:
            counts[case_id] = counts.get(case_id, 0) + 1
        return counts


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the recorder, not its access log."""

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def _send(self, status: int, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def _plan(self, kind: str) -> KillPlan | None:
        """The kill plan if this request is the one to kill at."""
        rec = self.server.recorder
        plan = rec.plan
        if plan is None or plan.fired or plan.kind != kind:
            return None
        plan.seen += 1
        if plan.seen < plan.nth:
            return None
        plan.fired = True
        rec.kills.append((kind, plan.phase, self._pid))
        return plan

    @property
    def _pid(self) -> int:
        return int(self.headers.get("X-Pid") or 0)

    def _act(self, kind: str, store: Any) -> None:
        """Run `store()` (returns status, body) under the kill plan for `kind`."""
        rec = self.server.recorder
        if kind.endswith("_card") and rec.latency:
            threading.Event().wait(rec.latency)
        with rec.lock:
            plan = self._plan(kind)
            if plan is not None and plan.phase == "before":
                _kill(self._pid)
                return
            status, body = store()
            if plan is not None and plan.phase == "stored":
                _kill(self._pid)
                return
        self._send(status, body)
        if plan is not None and plan.phase == "replied":
            threading.Timer(random.uniform(0, plan.delay), _kill, (self._pid,)).start()

    def do_POST(self) -> None:
        rec = self.server.recorder
        body = self._body()
        path = urlsplit(self.path).path
        if path == "/cards":

            def post() -> tuple[int, object]:
                cid = rec.new_id()
                rec.cards[cid] = body
                rec.posts.append((int(body["case_id"]), cid, self._pid))
                rec.post_times.append(time.monotonic())
                return 200, {"id": cid}

            self._act("post_card", post)
        elif path == "/messages":

            def send() -> tuple[int, object]:
                mid = rec.new_id()
                rec.messages[mid] = {**body, "id": mid, "deleted": False}
                return 200, {"id": mid}

            self._act("send", send)
        elif path == "/private":

            def reply() -> tuple[int, object]:
                rec.private.append(body)
                return 200, {}

            self._act("private", reply)
        else:
            self._send(404, {"error": "no such endpoint"})

    def do_PUT(self) -> None:
        rec = self.server.recorder
        body = self._body()
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "cards":

            def update() -> tuple[int, object]:
                if parts[1] not in rec.cards:
                    return 404, {"error": "card not found"}
                rec.cards[parts[1]] = body
                rec.updates += 1
                return 200, {"id": parts[1]}

            self._act("update_card", update)
        elif len(parts) == 2 and parts[0] == "messages":
            with rec.lock:
                msg = rec.messages.get(parts[1])
                if msg is None or msg["deleted"]:
                    self._send(404, {"error": "message not found"})
                    return
                msg["text"] = body["text"]
            self._send(200, {"id": parts[1]})
        else:
            self._send(404, {"error": "no such endpoint"})

    def do_DELETE(self) -> None:
        rec = self.server.recorder
        parts = urlsplit(self.path).path.strip("/").split("/")
        with rec.lock:
            msg = rec.messages.get(parts[-1]) if parts[0] == "messages" else None
            if msg is None or msg["deleted"]:
                self._send(404, {"error": "message not found"})
                return
            msg["deleted"] = True
        self._send(200, {})

    def do_GET(self) -> None:
        rec = self.server.recorder
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if parts == ["cards"]:
            q = parse_qs(url.query)

            def find() -> tuple[int, object]:
                for cid, card in rec.cards.items():
                    if str(card["case_id"]) == q["case_id"][0] and card["channel"] == q["channel"][0]:
                        return 200, {"id": cid}
                return 200, {"id": None}

            self._act("find_card", find)
        elif len(parts) == 2 and parts[0] == "messages":

            def fetch() -> tuple[int, object]:
                msg = rec.messages.get(parts[1])
                if msg is None or msg["deleted"]:
                    return 404, {"error": "message not found"}
                return 200, msg

            self._act("fetch", fetch)
        else:
            self._send(404, {"error": "no such endpoint"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class RecorderServer:
    """Runs the recorder on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.recorder = self.recorder
        self._thread = threading.Thread(target=self._server.serve_forever, name="card-recorder", daemon=True)

    @property
    def url(self) -> str:
        """Where the bots reach it."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecorderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
