"""What a failed Slack Web API call means: gone, forbidden, bad token or worth retrying, and what to do."""

from __future__ import annotations

from dataclasses import dataclass

#: Web API error codes that mean the target is gone (the core treats these like a 404).
GONE = frozenset({"channel_not_found", "message_not_found", "thread_not_found", "is_archived", "channel_is_archived"})
#: Codes that mean the app may not do this (a 403): membership, scopes, or Slack's own rules.
FORBIDDEN = frozenset(
    {
        "not_in_channel",
        "missing_scope",
        "cant_update_message",
        "cant_delete_message",
        "restricted_action",
        "user_not_in_channel",
        "edit_window_closed",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
#: Codes that mean the token itself is bad; the operator must act.
AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
#: Codes worth trying again later.
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})

_HINTS = {
    "not_in_channel": "invite the bot to the channel (/invite @scopebot)",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "cant_delete_message": "Slack lets a bot delete only its own messages; ask a workspace admin to remove it",
    "cant_update_message": "Slack lets a bot edit only its own messages",
    "is_archived": "the channel is archived",
    "ratelimited": "Slack's rate limit was still exceeded after retrying",
}


@dataclass(frozen=True, slots=True)
class ApiProblem:
    """What a failed Web API call means, for a `PlatformError`."""

    text: str
    retryable: bool
    status: int | None


def describe_api_error(method: str, where: str, *, error: str, status: int, needed: str = "") -> ApiProblem:
    """A clear description of a failed call: which method, where, Slack's error code and what to do."""
    hint = _HINTS.get(error, "")
    if error == "missing_scope" and needed:
        hint = f"add the {needed} scope to the Slack app and reinstall it"
    elif error in AUTH:
        hint = "the bot token was revoked or is invalid; set a fresh SLACK_BOT_TOKEN"
    text = f"Slack {method} failed ({where}): {error or f'HTTP {status}'}" + (f" — {hint}" if hint else "")
    if error in GONE:
        return ApiProblem(text, False, 404)
    if error in FORBIDDEN or error in AUTH:
        return ApiProblem(text, False, 403)
    if error == "ratelimited" or status == 429:
        return ApiProblem(text, True, 429)
    if error in TRANSIENT or status >= 500:
        return ApiProblem(text, True, status if status >= 500 else 503)
    return ApiProblem(text, False, status if status >= 400 else 400)
