"""The model worker process: owns one engine and serves generations over JSON lines on stdin/stdout.

Running the native library in its own process means a crash inside it cannot take the bot down; the
parent (`bot.llm.client.ModelWorker`) restarts it. Protocol, one JSON object per line:

parent → worker: {"op": "generate", "id", "parts", "params"} · {"op": "cancel", "id"} · {"op": "shutdown"}
worker → parent: {"ev": "ready", "info"} · {"ev": "fatal", "error"} · {"ev": "start", "id", …}
                 · {"ev": "text", "id", "text"} · {"ev": "done", "id", "stats"} · {"ev": "error", "id", "error"}
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from bot.llm.engine import Engine, GenerationStats, ModelLoadError, SamplingParams, load_engine
from bot.llm.prompt import PromptParts, pack

#: Seconds between text messages to the parent; tokens in between are batched into one line.
FLUSH_INTERVAL = 0.05


class _Channel:
    """Writes protocol lines to the parent; the only writer of the protocol stream."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, **msg: Any) -> None:
        line = json.dumps(msg, ensure_ascii=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


def _protocol_stdout() -> IO[str]:
    """Keep the real stdout for the protocol and point fd 1 at stderr, so native prints cannot corrupt it."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(proto_fd, "w", encoding="utf-8", buffering=1)


def serve(engine: Engine, chan: _Channel, inbox: IO[str], *, max_new_tokens: int) -> None:
    """Run generations one at a time until the parent says shutdown or closes stdin."""
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancelled: set[str] = set()
    lock = threading.Lock()

    def read() -> None:
        for line in inbox:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            op = msg.get("op")
            if op == "generate":
                jobs.put(msg)
            elif op == "cancel":
                with lock:
                    cancelled.add(str(msg.get("id")))
            elif op == "shutdown":
                break
        jobs.put(None)

    threading.Thread(target=read, name="worker-stdin", daemon=True).start()
    while (job := jobs.get()) is not None:
        rid = str(job["id"])
        try:
            _run_one(engine, chan, job, rid, lambda rid=rid: rid in cancelled, max_new_tokens=max_new_tokens)
        except Exception as e:  # noqa: BLE001 - report any failure of one job and keep serving
            chan.send(ev="error", id=rid, error=f"{type(e).__name__}: {e}")
        with lock:
            cancelled.discard(rid)


def _run_one(
    engine: Engine, chan: _Channel, job: dict[str, Any], rid: str, should_stop: Any, *, max_new_tokens: int
) -> None:
    import time

    params = SamplingParams(**job.get("params", {}))
    params = SamplingParams(**{**asdict(params), "max_new_tokens": min(params.max_new_tokens, max_new_tokens)})
    parts = PromptParts.from_dict(job["parts"])
    packed = pack(
        parts, tokenize=engine.tokenize, context_length=engine.context_length, max_new_tokens=params.max_new_tokens
    )
    chan.send(
        ev="start",
        id=rid,
        prompt_tokens=len(packed.tokens),
        passages_used=list(packed.passages_used),
        question_truncated=packed.question_truncated,
    )
    stats = GenerationStats()
    buffered = ""
    last = time.monotonic()
    for piece in engine.generate(packed.tokens, params, should_stop=should_stop, stats=stats):
        buffered += piece
        now = time.monotonic()
        if now - last >= FLUSH_INTERVAL:
            chan.send(ev="text", id=rid, text=buffered)
            buffered, last = "", now
    if buffered:
        chan.send(ev="text", id=rid, text=buffered)
    chan.send(ev="done", id=rid, stats=asdict(stats))


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m bot.llm.worker '<json settings>'`."""
    args = sys.argv[1:] if argv is None else argv
    settings = json.loads(args[0])
    chan = _Channel(_protocol_stdout())
    try:
        engine = load_engine(
            str(settings.get("engine", "ctransformers")),
            Path(settings["model_path"]),
            context_length=int(settings["context_length"]),
            threads=int(settings["threads"]),
            batch_size=int(settings["batch_size"]),
            lib=str(settings.get("lib", "")),
        )
    except ModelLoadError as e:
        chan.send(ev="fatal", error=str(e))
        return 3
    chan.send(
        ev="ready",
        info={
            "description": engine.description,
            "context_length": engine.context_length,
            "load_ms": round(engine.load_ms, 1),
            "pid": os.getpid(),
        },
    )
    serve(engine, chan, sys.stdin, max_new_tokens=int(settings["max_new_tokens"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
