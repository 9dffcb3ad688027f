"""Moderator commands: `scopebot case …`, `scopebot audit`, `scopebot stats`."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Register the moderation subcommands on the `scopebot` parser."""
    del sub
