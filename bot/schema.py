"""Imports every table module, so `SQLModel.metadata` describes the whole schema (for Alembic)."""

from sqlmodel import SQLModel

import bot.gate.overlay
import bot.models  # noqa: F401
import moderation.audit
import moderation.models  # noqa: F401

metadata = SQLModel.metadata
