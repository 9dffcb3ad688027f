"""The real app on a memory platform, for tests that drive the whole flow without a chat platform."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bot.app import App, build_app
from bot.config import load_config
from bot.events import PlatformLimits
from tests.fakes import MemoryPlatform

AppOnMemory = contextlib.AbstractAsyncContextManager[tuple[App, MemoryPlatform]]


@contextlib.asynccontextmanager
async def memory_app(
    config: Path, *, limits: PlatformLimits | None = None
) -> AsyncIterator[tuple[App, MemoryPlatform]]:
    """Build and start the app for `config` on a fresh `MemoryPlatform`; stop it afterwards."""
    mem = MemoryPlatform(limits=limits)
    app = build_app(load_config(config), platforms=[mem])
    await app.start()
    try:
        yield app, mem
    finally:
        await app.stop()
