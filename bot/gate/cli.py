"""Operator commands for the scope gate: `scopebot check`, `scopebot eval`, `scopebot scope …`."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    """Register the gate's subcommands on the `scopebot` parser."""
    del sub


__all__ = ["add_commands", "argparse"]
