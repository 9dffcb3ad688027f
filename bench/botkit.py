"""Starting the whole bot for a benchmark: a config in a temporary folder, the real app, a memory platform."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from common import ROOT

from bot.app import App, build_app
from bot.config import load_config
from bot.events import Actor, InboundMessage, PlatformLimits
from tests.fakes import MemoryPlatform
from tests.gguf_factory import write_llama_gguf

CONFIG = """
[bot]
user_questions_per_minute = {per_user}
channel_questions_per_minute = {per_channel}

[model]
{model_line}
context_length = 2048
threads = 1
max_new_tokens = {max_new_tokens}
queue_size = {queue_size}

[database]
url = "sqlite+aiosqlite:///{db}"

[moderation]
reviewer_channels = {{ memory = "reviewers" }}

[[scopes]]
name = "college"
description = "Answers questions about Northgate College: admissions and application deadlines, tuition and fees, financial aid, majors, campus life and tours."
refusal = "That's not a college data question."
examples = ["When is the Regular Decision deadline?", "How much is tuition?", "What majors do you offer?"]
knowledge = ["{knowledge}"]
"""


def bench_model(folder: Path, *, shape: str) -> Path:
    """A generated LLaMA GGUF: `tiny` (instant answers) or `small` (a few ms a token, never stops early)."""
    path = folder / f"{shape}.gguf"
    if not path.exists():
        if shape == "tiny":
            write_llama_gguf(path, eos_bias=-60.0)
        else:
            write_llama_gguf(path, n_layer=6, n_embd=384, n_ff=1024, n_head=6, eos_bias=-60.0)
    return path


@contextlib.asynccontextmanager
async def running_bot(
    *,
    model: Path | None,
    max_new_tokens: int = 64,
    queue_size: int = 64,
    per_user: int = 6,
    per_channel: int = 30,
    edit_interval: float = 1.0,
) -> AsyncIterator[tuple[App, MemoryPlatform]]:
    """The real app (gate, knowledge, model worker, SQLite, moderation) on a memory platform."""
    with tempfile.TemporaryDirectory(prefix="scopebot-bench-") as tmp:
        folder = Path(tmp)
        cfg = folder / "scopebot.toml"
        cfg.write_text(
            CONFIG.format(
                per_user=per_user,
                per_channel=per_channel,
                model_line=f'path = "{model.as_posix()}"' if model else "",
                max_new_tokens=max_new_tokens,
                queue_size=queue_size,
                db=(folder / "bench.db").as_posix(),
                knowledge=(ROOT / "examples" / "knowledge" / "college").as_posix(),
            ),
            encoding="utf-8",
        )
        mem = MemoryPlatform(limits=PlatformLimits(max_message_chars=2000, edit_interval=edit_interval))
        app = build_app(load_config(cfg), platforms=[mem])
        await app.start()
        try:
            yield app, mem
        finally:
            await app.stop()


def question(mem: MemoryPlatform, *, user: str, channel: str, text: str) -> InboundMessage:
    """A member's question, posted on the memory platform."""
    author = Actor(mem.name, user, user)
    ref = mem.post_as(author, mem.place(channel), text)
    return InboundMessage(ref=ref, author=author, text=text, mentions_bot=True)
