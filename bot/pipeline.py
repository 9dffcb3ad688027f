"""One question, start to finish: gate, knowledge, model, output screen, reply, provenance record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.answers import ConversationMemory, save_answer
from bot.config import Config, ScopeConfig
from bot.events import InboundMessage, OutboundMessage, Platform
from bot.gate import Gate, GateResult, learned_block, rule_detail
from bot.gate.language import LANGUAGE_RULE, language_reply
from bot.gate.smalltalk import small_talk_kind, small_talk_reply
from bot.gate.tasks import CUT_OFF_RULE
from bot.knowledge import KnowledgeIndex, terms
from bot.llm.client import Generation, ModelBusy, ModelFailed, ModelUnavailable, ModelWorker
from bot.llm.engine import SamplingParams
from bot.llm.prompt import Passage, PromptParts, system_prompt
from bot.models import BotAnswer
from bot.replier import StreamingReply
from bot.sanitize import clean_output
from bot.spool import Spool

log = logging.getLogger(__name__)

#: Passages retrieved per question.
TOP_PASSAGES = 3
BUSY_TEXT = "I'm answering other questions right now ({waiting} waiting). Please ask again in a minute."
QUEUED_TEXT = "You're number {n} in line; I'll answer here shortly."
RETRY_TEXT = "Sorry, I couldn't finish that answer. Please try again."
SHUTDOWN_TEXT = "I'm restarting and couldn't finish this answer. Please ask again in a minute."
#: Seconds a cancelled answer may spend telling the member before shutdown goes on.
SHUTDOWN_NOTICE_SECONDS = 3.0
NO_PASSAGES_TEXT = "I don't have anything on that in my sources."
#: Quoting without a model: passages looked at, lines quoted from each at most, the similarity a line with no
#: word of the question needs, and the share of the best line's similarity any other line needs.
QUOTE_PASSAGES = 2
QUOTE_LINES = 2
QUOTE_MIN_SIMILARITY = 0.4
QUOTE_RELATIVE = 0.75


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one question (returned for tests and metrics)."""

    verdict: str
    text: str
    answer_id: int | None


class QuestionMetrics(Protocol):
    """Where the pipeline reports each question (`bot.metrics.Metrics` in the app)."""

    def question_started(self, *, platform: str, scope: str) -> None:
        """A question reached the pipeline."""

    def question_finished(self, *, platform: str, scope: str, verdict: str, timings: Mapping[str, float]) -> None:
        """A question got its reply and was recorded; `timings` in milliseconds."""


class Pipeline:
    """Runs the flow of one question for any platform."""

    def __init__(
        self,
        *,
        config: Config,
        gate: Gate,
        knowledge: Mapping[str, KnowledgeIndex],
        sessions: async_sessionmaker[AsyncSession],
        model: ModelWorker | None,
        spool: Spool | None = None,
        memory: ConversationMemory | None = None,
        metrics: QuestionMetrics | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._gate = gate
        self._knowledge = knowledge
        self._sessions = sessions
        # Answer records wait here while the database is unreachable (`bot/spool.py`).
        self._spool = spool
        self.model = model
        self._memory = memory or ConversationMemory()

    def _params(self) -> SamplingParams:
        m = self._config.model
        return SamplingParams(
            max_new_tokens=m.max_new_tokens,
            temperature=m.temperature,
            top_k=m.top_k,
            top_p=m.top_p,
            repetition_penalty=m.repetition_penalty,
            seed=m.seed,
        )

    async def answer(self, msg: InboundMessage, scope: ScopeConfig, platform: Platform, *, request_id: str) -> Outcome:
        """Screen, answer and record one question addressed to the bot."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        if self._metrics is not None:
            self._metrics.question_started(platform=msg.ref.place.platform, scope=scope.name)
        history = self._memory.recent(msg.ref, msg.author.user_id)
        self._memory.remember(msg.ref, msg.author.user_id, msg.text)
        verdict = await self._gate.screen_prompt(scope, msg.text, history=history)
        timings["gate"] = _ms(started)
        record = BotAnswer(
            request_id=request_id,
            platform=msg.ref.place.platform,
            workspace=msg.ref.place.workspace,
            channel=msg.ref.place.channel,
            thread=msg.ref.place.thread,
            question_message_id=msg.ref.message_id,
            author_id=msg.author.user_id,
            question=msg.text,
            scope=scope.name,
            verdict=verdict.verdict,
            reason=verdict.reason,
            gate_rule=verdict.rule[:256],
            gate_score=verdict.score,
            config_version=self._config.version,
            model=self._config.model.label if self.model is not None else "none",
        )
        # A slash command has no message to thread under: answer in the channel, quoting the question.
        target = OutboundMessage(msg.ref.place, "", reply_to=None if msg.via_command else msg.ref)
        header = f"> {msg.text[:300]}\n(asked by {msg.author.label})\n" if msg.via_command else ""
        reply = StreamingReply(platform, target, header=header)
        talk = small_talk_kind(verdict.rule)
        if talk is not None:
            return await self._finish(reply, record, small_talk_reply(scope, talk), timings, started)
        if verdict.rule == CUT_OFF_RULE and self._config.bot.cut_off_reply:
            return await self._finish(reply, record, self._config.bot.cut_off_reply, timings, started)
        language = rule_detail(verdict.rule, LANGUAGE_RULE)
        if language and self._config.bot.language_reply:
            text = language_reply(self._config.bot.language_reply, language)
            return await self._finish(reply, record, text, timings, started)
        if verdict.verdict != "answer":
            text = scope.refusal if verdict.verdict == "refuse" else self._blocked_reply(verdict)
            return await self._finish(reply, record, text, timings, started)

        t = time.perf_counter()
        index = self._knowledge.get(scope.name)
        passages = await asyncio.to_thread(index.search, msg.text, k=TOP_PASSAGES) if index is not None else []
        timings["retrieval"] = _ms(t)
        record.passages = [p.as_dict() for p in passages]
        if self.model is None:
            return await self._finish(reply, record, await self._quote(scope, passages, msg.text), timings, started)
        return await self._generate(
            msg=msg, scope=scope, reply=reply, record=record, passages=passages, timings=timings, started=started
        )

    def _blocked_reply(self, verdict: GateResult) -> str:
        """`blocked_reply`; after a learned screen's block, with the hint that a flag brings a moderator."""
        bot, flags = self._config.bot, self._config.moderation.flag_emojis
        if not (bot.misread_hint and flags and learned_block(verdict.rule)):
            return bot.blocked_reply
        flag = "🚩" if flags[0] == "flag" else f":{flags[0]}:"
        return f"{bot.blocked_reply} {bot.misread_hint.replace('{flag}', flag)}"

    async def _quote(self, scope: ScopeConfig, passages: list[Passage], question: str) -> str:
        """The answer without a model: the passages' lines that answer the question (off the event loop: the
        lines are compared with the question by the embedding model)."""
        index = self._knowledge.get(scope.name)
        similarity = index.line_similarity if index is not None else None
        return await asyncio.to_thread(quote_passages, passages, question, similarity)

    async def _generate(
        self,
        *,
        msg: InboundMessage,
        scope: ScopeConfig,
        reply: StreamingReply,
        record: BotAnswer,
        passages: list[Passage],
        timings: dict[str, float],
        started: float,
    ) -> Outcome:
        assert self.model is not None
        parts = PromptParts(
            system=system_prompt(
                bot_name=self._config.bot.name,
                scope_name=scope.name,
                description=scope.description,
                refusal=scope.refusal,
                instructions=scope.instructions,
                aliases=scope.aliases,
                declined=self._config.bot.blocked_reply,
            ),
            question=msg.text,
            passages=tuple(passages),
        )
        params = self._params()
        record.model_params = asdict(params) | {
            "context_length": self._config.model.context_length,
            "threads": self._config.model.threads,
            "batch_size": self._config.model.batch_size,
            "engine": self._config.model.engine,
        }
        try:
            gen = self.model.submit(parts, params, lane=msg.ref.place.platform, user=msg.author.user_id)
        except ModelBusy as e:
            record.verdict = "busy"
            return await self._finish(reply, record, BUSY_TEXT.format(waiting=e.waiting), timings, started)
        except ModelUnavailable:
            return await self._finish(reply, record, await self._quote(scope, passages, msg.text), timings, started)
        try:
            if gen.ahead > 0:
                await reply.show_placeholder(QUEUED_TEXT.format(n=gen.ahead))
            text, blocked = await self._stream(gen, scope, reply)
        except ModelFailed as e:
            log.warning("question %s: generation failed: %s", record.request_id, e)
            record.verdict = "error"
            record.reason = f"generation failed: {e}"
            return await self._finish(reply, record, RETRY_TEXT, timings, started)
        except asyncio.CancelledError:
            # Shutting down mid-answer: stop the model and, briefly, tell the member rather than leave
            # a half answer (or a place in line) standing.
            self.model.cancel(gen)
            log.info("question %s: answer cancelled (shutting down)", record.request_id)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_NOTICE_SECONDS):
                    await reply.finish(SHUTDOWN_TEXT)
            raise
        except BaseException:
            self.model.cancel(gen)
            raise
        _fill_generation(record, gen, timings)
        record.passages = [record.passages[i] for i in gen.passages_used if i < len(record.passages)]
        if blocked is not None:
            record.verdict = "block"
            record.reason = blocked.reason
            record.answer = text
            return await self._finish(reply, record, self._config.bot.blocked_reply, timings, started, keep_answer=True)
        # The model replied one of the lines it was told to (a last screen behind the gate): recorded as such,
        # and shown without sources.
        for line, verdict, why in (
            (scope.refusal, "refuse", "the model replied the scope's refusal"),
            (self._config.bot.blocked_reply, "block", "the model declined the request"),
        ):
            if said_only(text, line):
                record.verdict = verdict
                record.reason = f"{why} (the gate had: {record.reason})"
                return await self._finish(reply, record, line.strip(), timings, started)
        text = text.strip() or NO_PASSAGES_TEXT
        sources = sorted({str(p["source"]) for p in record.passages})
        shown = f"{text}\n\nSources: {', '.join(sources)}" if sources else text
        return await self._finish(reply, record, shown, timings, started)

    async def _stream(
        self, gen: Generation, scope: ScopeConfig, reply: StreamingReply
    ) -> tuple[str, GateResult | None]:
        """Collect the answer, showing it as it grows, and screening it before each showing."""
        assert self.model is not None
        text = ""
        async for piece in gen.stream():
            # Byte tokens can decode to NUL and other controls (PostgreSQL and terminals refuse them), and
            # bidi overrides would let the post display other words than the output screen checks.
            text += clean_output(piece)
            if reply.streaming and reply.due():
                check = await self._gate.screen_answer(scope, text)
                if check.verdict != "answer":
                    self.model.cancel(gen)
                    return text, check
                await reply.update(text)
        check = await self._gate.screen_answer(scope, text)
        return text, (check if check.verdict != "answer" else None)

    async def _finish(
        self,
        reply: StreamingReply,
        record: BotAnswer,
        text: str,
        timings: dict[str, float],
        started: float,
        *,
        keep_answer: bool = False,
    ) -> Outcome:
        refs = await reply.finish(text)
        if not keep_answer:
            record.answer = text
        timings["total"] = _ms(started)
        record.timings = timings
        saved_id = await save_answer(self._sessions, answer=record, parts=refs, spool=self._spool)
        if self._metrics is not None:
            # Small talk is stored as a refusal (nothing was answered) but counted apart, so that the refusal rate
            # on a dashboard is the rate of questions refused.
            small = small_talk_kind(record.gate_rule) is not None
            self._metrics.question_finished(
                platform=record.platform, scope=record.scope, verdict="small_talk" if small else record.verdict,
                timings=timings,
            )  # fmt: skip
        log.info(
            "question %s: verdict=%s scope=%s reason=%s total=%.0f ms",
            record.request_id,
            record.verdict,
            record.scope,
            record.reason,
            timings["total"],
        )
        return Outcome(record.verdict, text, saved_id)


def said_only(text: str, line: str) -> bool:
    """Whether a model's answer is `line` and nothing else, give or take quotes, spacing, case and a final full
    stop (it was told to "reply exactly" with it)."""

    def plain(s: str) -> str:
        return " ".join(s.strip().strip("\"'“”‘’").split()).rstrip(".!").casefold()

    return bool(plain(line)) and plain(text) == plain(line)


#: Scores each of a passage's lines against the question (cosine similarity), when embeddings are at hand.
LineSimilarity = Callable[[str, Sequence[str]], npt.NDArray[np.float32] | None]


def quote_passages(passages: list[Passage], question: str, similarity: LineSimilarity | None = None) -> str:
    """An answer made of the lines of the best passages that answer the question, quoted with their sources.

    A line is a candidate when it shares a content word with the question or, given `similarity`, means nearly
    the same (cosine ≥ `QUOTE_MIN_SIMILARITY`: "how much is it to live in the dorms" finds "Housing and meals
    on campus cost $14,600" with no word in common). Candidates rank by their similarity to the question, and
    one less than `QUOTE_RELATIVE` times as similar as the best is dropped; each passage gives at most
    `QUOTE_LINES`, the passage with the best line first. Without `similarity`, lines rank by the words they
    share with the question."""
    if not passages:
        return NO_PASSAGES_TEXT
    wanted = set(terms(question))
    bodies: list[tuple[Passage, list[str]]] = []
    for p in passages[:QUOTE_PASSAGES]:
        lines = [line.strip() for line in p.text.strip().splitlines() if line.strip()]
        # A passage's first line is its section heading when more follow: context, not an answer. A passage
        # that matches the question only there ("Admissions at Northgate College" for "when does the
        # Northgate College bookstore close") has nothing to quote.
        bodies.append((p, lines[1:] if len(lines) > 1 else lines))
    flat = [line for _, body in bodies for line in body]
    sims = similarity(question, flat) if similarity is not None and flat else None
    scores: list[float | None] = []
    for i, line in enumerate(flat):
        shared = len(wanted & set(terms(line)))
        if sims is None:
            scores.append(float(shared) if shared else None)
        else:
            scores.append(float(sims[i]) if shared or sims[i] >= QUOTE_MIN_SIMILARITY else None)
    # Lines far less like the question than the best one are not quoted (the best always is).
    best = max((x for x in scores if x is not None), default=0.0)
    floor = QUOTE_RELATIVE * best if sims is not None and best > 0 else -math.inf
    blocks: list[tuple[float, str]] = []
    start = 0
    for p, body in bodies:
        own = sorted(
            ((x, i) for i, x in enumerate(scores[start : start + len(body)]) if x is not None and x >= floor),
            key=lambda x: (-x[0], x[1]),
        )
        start += len(body)
        if own:
            text = "\n".join(f"> {body[i]}" for _, i in own[:QUOTE_LINES]) + f"\n— {p.source}"
            if all(text != b for _, b in blocks):
                blocks.append((own[0][0], text))
    if not blocks:
        return NO_PASSAGES_TEXT
    blocks.sort(key=lambda b: -b[0])
    return "From my sources:\n" + "\n\n".join(text for _, text in blocks)


def _fill_generation(record: BotAnswer, gen: Generation, timings: dict[str, float]) -> None:
    stats = gen.stats
    record.prompt_tokens = gen.prompt_tokens
    record.completion_tokens = int(stats.get("completion_tokens", 0))
    record.truncated = gen.question_truncated
    timings["queue"] = round(gen.queue_ms, 1)
    for key in ("prompt_ms", "first_token_ms", "total_ms"):
        if key in stats:
            timings["model_" + key.removesuffix("_ms")] = round(float(stats[key]), 1)
    record.model_params = {
        **record.model_params,
        "stop_reason": stats.get("stop_reason", ""),
        "reused_tokens": stats.get("reused_tokens", 0),
    }


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
