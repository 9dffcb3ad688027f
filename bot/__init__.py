"""scopebot: a moderated, scoped LLaMA-2 bot for chat communities."""

__version__ = "0.1.0"
