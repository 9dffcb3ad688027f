"""Imports every table module, so `SQLModel.metadata` describes the whole schema (for Alembic)."""

from sqlmodel import SQLModel

import bot.gate.overlay  # noqa: F401
import bot.models  # noqa: F401
import moderation.audit  # noqa: F401
import moderation.models  # noqa: F401

metadata = SQLModel.metadata
