"""Helpers for the operations tests: a slower tiny model, and PostgreSQL administration outside the test database."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from tests.conftest import POSTGRES_ENV
from tests.gguf_factory import write_llama_gguf


def write_slow_gguf(folder: Path) -> Path:
    """A larger tiny LLaMA that never stops by itself, so an answer is still in flight when the test acts."""
    return write_llama_gguf(folder / "slow.gguf", n_layer=6, n_embd=384, n_ff=1024, n_head=6, eos_bias=-60.0)


async def admin(sql: str) -> None:
    """Run `sql` on the server's maintenance database (the one `SCOPEBOT_TEST_POSTGRES_URL` names)."""
    base = os.environ[POSTGRES_ENV]
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
