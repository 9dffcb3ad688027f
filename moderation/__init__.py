"""Moderation: reports, the review queue and its scheduler, reviewer actions, the audit log."""
