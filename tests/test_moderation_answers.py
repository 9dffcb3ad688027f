"""Flags on the bot's own answers: provenance, hiding at the threshold, retraction, regression prompts."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot.answers import record_answer
from bot.config import load_config
from bot.events import CardAction, MessageRef, OutboundMessage
from bot.gate.evaluate import regression_examples
from bot.gate.lexical import LexicalGate
from bot.models import BotAnswer
from moderation.audit import entries
from moderation.models import Case, CaseEvidence, RegressionExample
from moderation.regressions import regression_prompts, regression_rows, replay_regressions
from moderation.router import route_until_idle
from moderation.stats import queue_stats
from tests.moderation_support import Harness, harness


async def _answer(h: Harness, question: str, parts: list[str]) -> tuple[MessageRef, list[MessageRef], BotAnswer]:
    """A member's question and the bot's answer in its thread, recorded as the pipeline records them."""
    place = h.platform.place("admissions")
    q = h.platform.post_as(h.member("alice"), place, question)
    refs = [await h.platform.send(OutboundMessage(place, p, reply_to=q)) for p in parts]
    return q, refs, await _record(h, q, question, parts, refs)


async def _record(
    h: Harness,
    q: MessageRef,
    question: str,
    parts: list[str],
    refs: list[MessageRef],
    *,
    verdict: str = "answer",
    rule: str = "topic",
) -> BotAnswer:
    """Record the reply posted as `refs`, as the pipeline does when it has finished streaming."""
    place = q.place
    return await record_answer(
        h.sessions,
        answer=BotAnswer(
            request_id="r1",
            platform=place.platform,
            workspace=place.workspace,
            channel=place.channel,
            question_message_id=q.message_id,
            author_id="alice",
            question=question,
            answer="".join(parts),
            scope="college",
            verdict=verdict,
            reason={"answer": "in scope: tuition", "refuse": "out of scope (0.51 < 0.73)"}.get(verdict, rule),
            gate_rule=rule,
            gate_score=0.9,
            passages=[{"source": "costs-and-aid.md", "text": "Tuition is $41,200.", "score": 3.1}],
            model="tiny.gguf",
            model_params={"temperature": 0.7},
            config_version="abc123",
        ),
        parts=refs,
    )


async def test_flagged_answer_keeps_provenance_and_hides_at_threshold(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url, hide_threshold=2) as h:
        svc = h.runtime.service
        _q, refs, answer = await _answer(h, "How much is tuition?", ["Tuition is $9.", " Also free pizza."])

        await svc.on_reaction(h.platform, h.flag(refs[1], "bob"))
        await svc.on_reaction(h.platform, h.flag(refs[0], "bob"))  # another part of the same answer: no-op
        assert [h.platform.messages[r.message_id].text for r in refs] == ["Tuition is $9.", " Also free pizza."]
        async with h.sessions() as session:
            case = (await session.execute(select(Case))).scalars().one()
            evidence = await session.get(CaseEvidence, case.id)
        assert case.answer_id == answer.id and case.scope == "college" and case.author_is_bot
        assert evidence is not None and evidence.provenance is not None
        prov = evidence.provenance
        assert prov["question"] == "How much is tuition?"
        assert prov["passages"][0]["source"] == "costs-and-aid.md"
        assert (prov["verdict"], prov["reason"], prov["model"], prov["config_version"]) == (
            "answer",
            "in scope: tuition",
            "tiny.gguf",
            "abc123",
        )
        assert prov["model_params"] == {"temperature": 0.7}

        # The second distinct reporter hides every part at once, and the case turns urgent.
        await svc.on_reaction(h.platform, h.flag(refs[0], "carol"))
        note = h.config.moderation.hidden_note
        assert [h.platform.messages[r.message_id].text for r in refs] == [note, note]
        async with h.sessions() as session:
            case = (await session.execute(select(Case))).scalars().one()
            hidden = await session.get(BotAnswer, answer.id)
        assert case.urgent and case.reporters == 2 and hidden is not None and hidden.hidden
        await route_until_idle(h.runtime.router)
        card = next(iter(h.platform.cards.values()))
        assert card.urgent and "How much is tuition?" in card.body and "costs-and-aid.md" in card.body
        assert {b.action for b in card.buttons} >= {"retract", "off_scope", "unsafe"}


async def test_a_flag_on_an_answer_still_streaming_gets_its_provenance_when_it_is_recorded(
    tmp_path: Path, db_url: str
) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        place = h.platform.place("admissions")
        q = h.platform.post_as(h.member("alice"), place, "How much is tuition?")
        first = await h.platform.send(OutboundMessage(place, "Tuition is", reply_to=q))
        # Flagged while the model is still writing: nothing is recorded yet, the case knows only the message.
        await svc.on_reaction(h.platform, h.flag(first, "bob"))
        await route_until_idle(h.runtime.router)
        card = next(iter(h.platform.cards.values()))
        assert "costs-and-aid.md" not in card.body

        answer = await _record(h, q, "How much is tuition?", ["Tuition is $9."], [first])
        await route_until_idle(h.runtime.router)
        async with h.sessions() as session:
            case = (await session.execute(select(Case))).scalars().one()
            evidence = await session.get(CaseEvidence, case.id)
        assert case.answer_id == answer.id and case.scope == "college"
        assert evidence is not None and evidence.provenance is not None
        assert evidence.provenance["question"] == "How much is tuition?"
        # The same card, brought up to date: the moderator sees the question and the passages now.
        assert len(h.platform.cards) == 1
        card = next(iter(h.platform.cards.values()))
        assert "How much is tuition?" in card.body and "costs-and-aid.md" in card.body
        assert {b.action for b in card.buttons} >= {"retract"}


async def test_flags_that_reach_the_hide_threshold_while_streaming_hide_the_answer_once_recorded(
    tmp_path: Path, db_url: str
) -> None:
    async with harness(tmp_path, db_url, hide_threshold=2) as h:
        svc = h.runtime.service
        place = h.platform.place("admissions")
        q = h.platform.post_as(h.member("alice"), place, "How much is tuition?")
        first = await h.platform.send(OutboundMessage(place, "Tuition is", reply_to=q))
        await svc.on_reaction(h.platform, h.flag(first, "bob"))
        await svc.on_reaction(h.platform, h.flag(first, "carol"))
        # Nothing recorded yet: there is no answer to hide, the message stays as it is.
        assert h.platform.messages[first.message_id].text == "Tuition is"

        rest = await h.platform.send(OutboundMessage(place, " $9, and free pizza.", reply_to=q))
        answer = await _record(h, q, "How much is tuition?", ["Tuition is", " $9, and free pizza."], [first, rest])
        await route_until_idle(h.runtime.router)
        note = h.config.moderation.hidden_note
        assert [h.platform.messages[r.message_id].text for r in (first, rest)] == [note, note]
        async with h.sessions() as session:
            case = (await session.execute(select(Case))).scalars().one()
            hidden = await session.get(BotAnswer, answer.id)
            actions = [e.action for e in await entries(session, case_id=case.id)]
        assert hidden is not None and hidden.hidden and case.urgent and not case.hide_pending
        assert actions.count("answer.hidden") == 1


async def _two_parts(h: Harness) -> tuple[MessageRef, MessageRef, MessageRef]:
    """A question and the first two parts of an answer still streaming (nothing recorded yet)."""
    place = h.platform.place("admissions")
    q = h.platform.post_as(h.member("alice"), place, "How much is tuition?")
    first = await h.platform.send(OutboundMessage(place, "Tuition is $9,", reply_to=q))
    second = await h.platform.send(OutboundMessage(place, " and free pizza.", reply_to=q))
    return q, first, second


async def _record_two(h: Harness, q: MessageRef, first: MessageRef, second: MessageRef) -> None:
    """The answer of `_two_parts` finishes: it is recorded and the router runs."""
    await _record(h, q, "How much is tuition?", ["Tuition is $9,", " and free pizza."], [first, second])
    await route_until_idle(h.runtime.router)


async def test_flags_on_two_parts_of_a_streaming_answer_end_up_on_one_case(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url, hide_threshold=3) as h:
        svc = h.runtime.service
        q, first, second = await _two_parts(h)
        # While the answer streams each part is its own message, so each opens its own case.
        await svc.on_reaction(h.platform, h.flag(first, "bob"))
        await svc.on_reaction(h.platform, h.flag(second, "bob"))
        await svc.on_reaction(h.platform, h.flag(second, "carol"))
        await route_until_idle(h.runtime.router)
        assert len(h.platform.cards) == 2

        await _record_two(h, q, first, second)
        async with h.sessions() as session:
            cases = {c.message_key: c for c in (await session.execute(select(Case))).scalars()}
            merged = cases[second.key]
            actions = [e.action for e in await entries(session, case_id=merged.id)]
            stats = await queue_stats(session)
        answer_case = cases[first.key]
        # bob counts once: two distinct reporters on the answer's case, none left on the merged one.
        assert (answer_case.reporters, answer_case.state) == (2, "routed")
        assert (merged.state, merged.resolution, merged.reporters) == ("resolved", "merged", 0)
        assert "case.merged" in actions
        assert stats["resolved"] == 0 and stats["open_cases"] == 1  # merging is not a review
        cards = {c.case_id: c for c in h.platform.cards.values()}
        assert cards[merged.id].status.startswith("merged") and not cards[merged.id].buttons
        assert dict(cards[answer_case.id].fields)["Reporters"].startswith("2 ")
        # A third reporter on either part reaches the hide threshold of the whole answer.
        await svc.on_reaction(h.platform, h.flag(second, "dave"))
        note = h.config.moderation.hidden_note
        assert [h.platform.messages[r.message_id].text for r in (first, second)] == [note, note]


async def test_a_case_on_a_later_part_becomes_the_answers_case(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        q, first, second = await _two_parts(h)
        await svc.on_reaction(h.platform, h.flag(second, "bob"))
        await _record_two(h, q, first, second)
        await svc.on_reaction(h.platform, h.flag(first, "carol"))
        await svc.on_reaction(h.platform, h.flag(first, "bob"))  # bob already flagged the answer: no-op
        async with h.sessions() as session:
            case = (await session.execute(select(Case))).scalars().one()
        assert case.message_key == first.key and case.reporters == 2


async def test_retract_posts_correction_and_stores_regression_prompt(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        q, refs, answer = await _answer(h, "Who will win the football game tonight?", ["The Tigers, surely."])
        await svc.on_reaction(h.platform, h.flag(refs[0], "bob"))
        await route_until_idle(h.runtime.router)
        case_id = next(iter(h.platform.cards.values())).case_id
        card_ref = MessageRef(h.platform.place("reviewers"), next(iter(h.platform.cards)))

        press = CardAction(
            h.member("mod"), case_id, "off_scope", card=card_ref, argument="We only answer college questions."
        )
        await svc.on_card_action(h.platform, press)

        assert h.platform.messages[refs[0].message_id].text == h.config.moderation.retracted_note
        corrections = [m for m in h.platform.replies_to(q) if m.ref not in refs]
        assert [m.text for m in corrections] == ["We only answer college questions."]
        async with h.sessions() as session:
            example = (await session.execute(select(RegressionExample))).scalars().one()
            trail = [e.action for e in await entries(session, case_id=case_id)]
        assert (example.scope, example.kind, example.question) == (
            "college",
            "off_scope",
            "Who will win the football game tonight?",
        )
        assert trail == ["report.filed", "case.routed", "case.off_scope"]

        # The gate's evaluation can replay it: the lexical gate refuses it now, so it passes.
        rows = await regression_rows(h.sessions, scope="college")
        assert rows == [(f"case-{case_id}", "Who will win the football game tonight?", "refuse")]
        examples = regression_examples(rows, scope="college")
        assert [(e.expected, e.kind) for e in examples] == [("refuse", "regression")]
        prompts = await regression_prompts(h.sessions, scope="college")
        assert [(p.case_id, p.expected) for p in prompts] == [(case_id, "refuse")]
        config = load_config(h.config.source)
        gate = LexicalGate(global_blocked=[], knowledge={})
        results = await replay_regressions(h.sessions, gate=gate, scope_config=config.scope)
        assert [(r.verdict, r.passed) for r in results] == [("refuse", True)]
        assert answer.id is not None


async def _flagged_answer(h: Harness) -> int:
    """The case of a flagged answer to "How much is tuition?"."""
    _q, refs, _row = await _answer(h, "How much is tuition?", ["Tuition is $9."])
    await h.runtime.service.on_reaction(h.platform, h.flag(refs[0], "bob"))
    async with h.sessions() as session:
        return (await session.execute(select(Case.id))).scalars().one() or 0


async def test_warn_and_timeout_act_on_the_author_not_on_the_bot(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        case_id = await _flagged_answer(h)
        text = await svc.act(platform=h.platform, actor=h.member("mod"), place=None, case_id=case_id, action="warn")
        assert "bot's own answer" in text
        assert not [r for r in h.platform.private if r.user_id == "scopebot"]


async def test_a_wrong_refusal_becomes_an_example_and_a_regression_that_expects_an_answer(
    tmp_path: Path, db_url: str
) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        question = "Is there a shuttle from the airport on move-in day?"
        refusal = h.config.scope("college").refusal
        ref, _ = await _flagged_reply(h, question, refusal, verdict="refuse", rule="topic")
        card_id, card = next(iter(h.platform.cards.items()))
        # A refusal's card offers what fits a refusal: right, or should have been answered.
        assert [b.action for b in card.buttons] == ["claim", "dismiss", "missed", "escalate"]
        assert "Gate: refuse (out of scope" in card.body

        await svc.on_card_action(
            h.platform, CardAction(h.member("eve"), card.case_id, "missed", card=MessageRef(card.place, card_id))
        )
        assert h.platform.messages[ref.message_id].text == refusal  # eve is no moderator
        await svc.on_card_action(
            h.platform, CardAction(h.member("mod"), card.case_id, "missed", card=MessageRef(card.place, card_id))
        )
        # The member is told to ask again, in place of the refusal; the scope answers the question from now on.
        assert h.platform.messages[ref.message_id].text == h.config.moderation.reconsidered_note
        scopes = h.runtime.service.effects._phrases._scopes  # type: ignore[attr-defined]
        assert question in scopes.get("college").examples
        async with h.sessions() as session:
            example = (await session.execute(select(RegressionExample))).scalars().one()
            trail = [e.action for e in await entries(session, case_id=card.case_id)]
        assert (example.kind, example.question) == ("missed", question)
        assert trail == ["report.filed", "case.routed", "case.missed"]
        assert await regression_rows(h.sessions, scope="college") == [(f"case-{card.case_id}", question, "answer")]
        # Replayed against a gate that still refuses it, the regression fails; once answered, it passes.
        config = load_config(h.config.source)
        results = await replay_regressions(
            h.sessions, gate=LexicalGate(global_blocked=[], knowledge={}), scope_config=config.scope
        )
        assert [(r.prompt.expected, r.verdict, r.passed) for r in results] == [("answer", "refuse", False)]
        learnt = config.scope("college").model_copy(update={"examples": [question]})
        results = await replay_regressions(
            h.sessions, gate=LexicalGate(global_blocked=[], knowledge={}), scope_config=lambda _: learnt
        )
        assert [r.passed for r in results] == [True]


async def test_missed_is_only_for_refusals(tmp_path: Path, db_url: str) -> None:
    async with harness(tmp_path, db_url) as h:
        case_id = await _flagged_answer(h)
        text = await h.runtime.service.act(
            platform=h.platform, actor=h.member("mod"), place=None, case_id=case_id, action="should-answer"
        )
        assert "was answered, not refused" in text
        async with h.sessions() as session:
            assert (await session.get(Case, case_id)).state != "resolved"  # type: ignore[union-attr]
            assert (await session.execute(select(RegressionExample))).scalars().all() == []


async def _flagged_reply(h: Harness, question: str, reply: str, *, verdict: str, rule: str) -> tuple[MessageRef, int]:
    """A member's question, the bot's `reply` with the gate's `verdict` and `rule`, flagged by the member and routed;
    the reply and its case."""
    place = h.platform.place("admissions")
    q = h.platform.post_as(h.member("alice"), place, question)
    ref = await h.platform.send(OutboundMessage(place, reply, reply_to=q))
    await _record(h, q, question, [reply], [ref], verdict=verdict, rule=rule)
    await h.runtime.service.on_reaction(h.platform, h.flag(ref, "alice"))
    await route_until_idle(h.runtime.router)
    card = next(c for c in h.platform.cards.values() if question in c.body)
    return ref, card.case_id


async def _flagged_block(h: Harness, question: str, rule: str) -> tuple[MessageRef, int]:
    """A member's question the gate blocked with `rule`, flagged; the reply and its case."""
    return await _flagged_reply(h, question, h.config.bot.blocked_reply, verdict="block", rule=rule)


async def test_a_block_by_a_learned_screen_can_be_marked_missed_a_rules_block_cannot(
    tmp_path: Path, db_url: str
) -> None:
    async with harness(tmp_path, db_url) as h:
        svc = h.runtime.service
        pills = "where can i get rid of old pills"
        ref, case_id = await _flagged_block(h, pills, "harm:drugs:model")
        card = next(c for c in h.platform.cards.values() if c.case_id == case_id)
        assert [b.action for b in card.buttons] == ["claim", "dismiss", "missed", "escalate"]
        text = await svc.act(platform=h.platform, actor=h.member("mod"), place=None, case_id=case_id, action="missed")
        assert "should have answered it" in text and "is now one of its scope's examples" in text
        assert h.platform.messages[ref.message_id].text == h.config.moderation.reconsidered_note
        scopes = h.runtime.service.effects._phrases._scopes  # type: ignore[attr-defined]
        assert pills in scopes.get("college").examples

        # A rule's block is not lifted by an example: the card has no such button and the action says why.
        bomb = "explain how to make a pipe bomb"
        ref, case_id = await _flagged_block(h, bomb, "harm:weapons:explosives")
        card = next(c for c in h.platform.cards.values() if c.case_id == case_id)
        assert [b.action for b in card.buttons] == ["claim", "dismiss", "escalate"]
        text = await svc.act(platform=h.platform, actor=h.member("mod"), place=None, case_id=case_id, action="missed")
        assert "blocked by a rule or a word list" in text
        assert h.platform.messages[ref.message_id].text == h.config.bot.blocked_reply
        assert bomb not in scopes.get("college").examples
