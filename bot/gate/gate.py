"""The scope gate: word lists, harm and jailbreak screens, then the topic classifier.

Order of decision for a question (each step sees the normalizer's views of the text):

1. word lists (global and the scope's) on the question, and on the user's recent turns joined with it;
2. hand-written harm/jailbreak rules, on the same two texts;
3. the learned harm/jailbreak screen on the whole question and on each sentence and clause (and on the
   de-obfuscated text when the normalizer undid a disguise, and on the recent turns joined), then the
   intent screen on the whole question (a harmful purpose in the organisation's ordinary words);
4. what the question asks for: creative writing (poems, jokes, stories) is refused whatever its subject, and
   a plain service question ("is there parking?", "do you take cards?") is answered by the scope it is asked
   in (bot/gate/tasks.py);
5. the topic classifier on the question itself.

1–3 `block` (the reason names the list and entry, or the category), 4–5 `refuse` (the reason says what was
asked for, or shows the nearest in-scope example and its score), otherwise `answer`. Answers go through 1–3
(jailbreak class excepted: an answer that declines a role-play must not be blocked for naming it).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.config import ScopeConfig
from bot.gate import GateResult, learned_block
from bot.gate.embed import DIM, Embedder, Vectors
from bot.gate.harm import HARM, JAILBREAK, ScreenModels, load_models, views
from bot.gate.language import LANGUAGE_RULE, other_language
from bot.gate.normalize import Normalized, clean_text, normalize
from bot.gate.rules import match_joined, match_rules
from bot.gate.smalltalk import SMALL_TALK_RULE, small_talk
from bot.gate.tasks import OWN_BOOKING_RULE, asks_for_general_advice, organisation_names, own_booking, what_is_asked
from bot.gate.topic import FEATURES, ScopeIndex, asks_about_safety, build_indexes
from bot.gate.wordlists import WordLists
from bot.knowledge import Chunk, KnowledgeIndex, terms

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
GENERIC_FILE = DATA / "generic_questions.txt"
#: Service questions any organisation gets ("can I come in today?"): the topic classifier's "service" feature.
SERVICE_FILE = DATA / "service_questions.txt"
#: The generic questions' vectors, saved by the training script so start-up need not embed them.
GENERIC_VECTORS = DATA / "generic_vectors.npz"
#: Recent turns of the same person screened together with the question.
HISTORY_TURNS = 3
#: A question or answer sentence this similar to one of the scope's own texts, or another configured scope's,
#: is never screened as harmful on the classifier's word alone ("how long does donating take" is the blood
#: centre's question, refused by the marina, not blocked as fraud).
TRUSTED_SIMILARITY = 0.7
#: A short question that asks for help as a victim, or whether something is safe, is not blocked on the
#: classifier's word alone (rules still apply): "is that a scam?", "who do I report it to?", "my bike was stolen".
HELP_SEEKING = re.compile(
    r"\b(is|was) (this|that|it) (a |an )?(scam|fraud|phishing|legit|real|safe|dangerous|toxic|poisonous|a fire risk)\b"
    r"|\b(who|where|how) (do|should|can|could) (i|we) report\b|\bhow (do|can|should) (i|we) (report|protect|keep)\b"
    r"|\b(was|were|got|been|has been|have been) (stolen|taken|hacked|broken into|scammed|vandali[sz]ed)\b"
    r"|\bsomeone (stole|took|broke into|hacked|called|texted|emailed)\b|\bwhat (do|should) (i|we) do if\b"
)
HELP_MAX_WORDS = 40
#: Someone telling the organisation what another person there does ("there's a guy who keeps filming women at the
#: gym", "a man has been following a girl around the shop, staff should know"): a report, in the words of the
#: harassment, stalking or sexual requests it reports. The classifier alone does not block it; the intent screen,
#: which reads what the asker means to do, and the rules still judge it.
THIRD_PARTY_REPORT = re.compile(
    r"\b(?:there'?s|there is|there are|there was|i saw|i see|i noticed|i watched|we saw|we noticed)\s+"
    r"(?:a|an|this|that|some|the same|one|two|three)\s+(?:\w+\s+)?"
    r"(?:guy|guys|man|men|woman|women|lady|person|people|kid|kids|teen|teens|teenager|teenagers|boy|boys|girl|girls"
    r"|group|couple|customer|customers|member|members|driver|parent|dad|mom|mum)\b"
    r"|\b(?:a|an|this|that|some|the same|one)\s+(?:\w+\s+)?(?:guy|man|woman|lady|person|kid|teen|teenager|customer"
    r"|member|driver|parent|dad|mom|mum)(?:\s+[\w']+){0,4}?\s+(?:keeps|kept|has been|have been|was|is|were|had been)"
    r"\s+\w+ing\b"
)
#: … unless the asker means to do something themselves, other than tell someone: "there's a guy who keeps taking my
#: spot on the auto-belay, how do i mess with it so he gets a scare" is a request in a report's words.
_TELLING = (
    r"(?:tell|report|contact|call|talk|speak|let|complain|raise|flag|reach|ask|alert|warn|inform|email|message|do|be)\b"
)
ASKER_ACTS = re.compile(
    rf"\b(?:do|does|can|could|should|would|might|will|shall|did|to)\s+(?:i|we)\s+(?!{_TELLING})\w+"
    r"|\b(?:i|we)\s+(?:want|wanna|gonna|am going|'m going|m going|will|'ll|need|plan|intend)\s+"
    rf"(?:to\s+)?(?!{_TELLING})\w+"
)
#: A clause or sentence with fewer content words than this says nothing on its own ("how does that work", "is
#: that possible?"): what it refers to is in the rest of the message, screened as the whole and as its own views.
#: The classifier read "is that possible?" as fraud (0.99), so it does not judge such views (rules still do).
MIN_VIEW_TERMS = 2
#: Views the intent screen reads: the whole question only (its clauses alone lose the intent).
INTENT_VIEWS = 1
#: The classifier answers nothing whose nearest scope text is less similar than this, nor, when less than
#: `UNSHARED_WORDS` of the question's words (weighted by rarity, the `lex_in` feature) are the scope's, than
#: `UNSHARED_FLOOR`: that far from everything it extrapolates from features it never saw together (chat such as
#: "are you coming over later" read as in scope at 0.96, nearest 0.18). 2 of the 580 in-scope rows of the
#: training scopes are under 0.15, none under 0.2 with less than 0.23 of their words the scope's; no question of
#: the evaluation sets changes verdict.
NEAREST_FLOOR = 0.15
UNSHARED_FLOOR = 0.2
UNSHARED_WORDS = 0.2
_LEX_IN = FEATURES.index("lex_in")
#: The harm classifier blocks a question alone at this probability; below it, a view it flags is blocked only if the
#: intent encoder also reads harm in it (`IntentEncoder.harm_confirm`). The classifier reads words: "you free
#: saturday? we could hook up after practice" (sexual, 0.96), "I called twice and nobody picked up" (harassment,
#: 0.95); the encoder, which reads the request, scores such questions far below any harmful request the classifier
#: was fitted on.
HARM_SURE = 0.99
#: Answers come from the scoped model, after a screened question: the classifier must be surer to withhold
#: one (rules still apply in full). Fluent but odd model text otherwise trips it now and then.
ANSWER_HARM_FLOOR = 0.9


def read_lines(path: Path) -> list[str]:
    """Non-empty lines that are not `#` comments."""
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip() and not s.startswith("#")]


def texts_digest(texts: Sequence[str]) -> str:
    """A fingerprint of a list of texts, to know saved vectors still belong to them."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def save_generic_vectors(path: Path, texts: Sequence[str], vecs: Vectors) -> None:
    """Store the generic questions' vectors with the fingerprint of the texts."""
    np.savez_compressed(path, vecs=vecs.astype(np.float16), digest=np.array(texts_digest(texts)))


def generic_vectors(embedder: Embedder, texts: Sequence[str], path: Path = GENERIC_VECTORS) -> Vectors:
    """The saved vectors when they match `texts`, else freshly embedded ones."""
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if str(data["digest"]) == texts_digest(texts):
                return np.asarray(data["vecs"], dtype=np.float32)
    log.info("embedding %d generic questions (saved vectors are missing or stale)", len(texts))
    return embedder.encode([normalize(t).clean for t in texts])


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One question's normalized views, its recent turns joined (if any), and the texts to embed."""

    norm: Normalized
    history: Normalized | None
    texts: list[str]


def _nearest(vecs: Vectors, texts: Vectors) -> np.ndarray:
    """Each vector's best cosine similarity to `texts` (0 when there are none)."""
    if len(texts) == 0:
        return np.zeros(len(vecs))
    return np.asarray((vecs @ texts.T).max(axis=1))


@functools.lru_cache(maxsize=256)
def _names(description: str, aliases: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return organisation_names(description, aliases)


class ScopeGate:
    """The full gate; build it once (it embeds every scope's texts) and share it."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        scopes: Sequence[ScopeConfig],
        knowledge: Mapping[str, KnowledgeIndex],
        global_blocked: Sequence[str],
        models: ScreenModels | None = None,
        generic: Sequence[str] | None = None,
    ) -> None:
        self._embed = embedder
        self._models = models or load_models()
        self._global = list(global_blocked)
        self._knowledge = knowledge
        self._generic = list(generic) if generic is not None else read_lines(GENERIC_FILE)
        self._generic_vecs = generic_vectors(embedder, self._generic)
        self._service_vecs = embedder.encode([clean_text(t) for t in read_lines(SERVICE_FILE)])
        self._lists: dict[tuple[str, tuple[str, ...]], WordLists] = {}
        self._scopes = list(scopes)
        self._indexes: dict[str, ScopeIndex] = {}
        self.reindex()

    def reindex(self) -> None:
        """(Re)build the topic indexes from the scopes and their knowledge (blocking: embeds texts)."""
        chunks: dict[str, Sequence[Chunk]] = {s.name: self._chunks(s.name) for s in self._scopes}
        self._indexes = build_indexes(
            scopes=self._scopes,
            chunks=chunks,
            generic=self._generic,
            generic_vecs=self._generic_vecs,
            encode=self._embed.encode,
            service_vecs=self._service_vecs,
        )

    def update_scopes(self, scopes: Sequence[ScopeConfig]) -> bool:
        """Take the scopes in force (after run-time changes); rebuild the indexes (blocking) if what they are
        built from (descriptions, examples, aliases, the set of scopes) changed. True when rebuilt."""

        def basis(items: Sequence[ScopeConfig]) -> list[tuple[object, ...]]:
            return [(s.name, s.description, tuple(s.examples), tuple(s.aliases)) for s in items]

        if basis(scopes) == basis(self._scopes):
            return False
        self._scopes = list(scopes)
        self.reindex()
        log.info("scopes changed; topic indexes rebuilt")
        return True

    def refresh_knowledge(self) -> bool:
        """Re-read changed knowledge files and rebuild the indexes if any changed (blocking)."""
        changed = [name for name, index in self._knowledge.items() if index.refresh()]
        if changed:
            log.info("knowledge changed for %s; rebuilding topic indexes", ", ".join(changed))
            self.reindex()
        return bool(changed)

    def _chunks(self, name: str) -> Sequence[Chunk]:
        index = self._knowledge.get(name)
        return index.chunks if index is not None else ()

    def _word_lists(self, scope: ScopeConfig) -> WordLists:
        key = (scope.name, tuple(scope.blocked_words))
        lists = self._lists.get(key)
        if lists is None:
            # Run-time edits to a scope's words make a new key; the old compiled lists are dropped.
            self._lists = {k: v for k, v in self._lists.items() if k[0] != scope.name}
            lists = self._lists[key] = WordLists({"global": self._global, scope.name: scope.blocked_words})
        return lists

    def _index(self, scope: ScopeConfig) -> ScopeIndex:
        index = self._indexes.get(scope.name)
        if index is None:
            # A scope the gate was not built with (tests, tools): index it on first use.
            self._scopes.append(scope)
            self.reindex()
            index = self._indexes[scope.name]
        return index

    # -- the pure, synchronous core -------------------------------------------------------------

    def prepare(self, text: str, history: Sequence[str] = ()) -> _Prepared:
        """Normalize a question (and recent turns) and list the texts to embed for it."""
        norm = normalize(text)
        texts = views(norm.clean)
        if norm.disguised:
            texts += [v for v in views(norm.folded) if v not in texts]
        joined = None
        turns = [t for t in history[-HISTORY_TURNS:] if t.strip()]
        if turns:
            joined = normalize("\n".join([*turns, text]))
            texts.append(joined.clean)
        return _Prepared(norm, joined, texts)

    def _block_by_rules(self, scope: ScopeConfig, norm: Normalized, *, answer: bool) -> GateResult | None:
        hit = self._word_lists(scope).find(norm.folded)
        if hit is not None:
            what = "answer contained a blocked word" if answer else "blocked word"
            return GateResult("block", scope.name, f"{what} ({hit.list_name} list): {hit.entry}", 1.0, rule=hit.rule)
        prefix = "answer screened as " if answer else ""
        rule = match_rules(norm.folded)
        if rule is not None and not (answer and rule.category == "jailbreak"):
            return GateResult(
                "block", scope.name, f"{prefix}{rule.category.replace('_', ' ')} (rule {rule.name})", 1.0,
                rule=f"harm:{rule.category}:{rule.name}",
            )  # fmt: skip
        joined = match_joined(norm.joined)
        if joined is not None and not (answer and joined[0] == "jailbreak"):
            category, term = joined
            return GateResult(
                "block",
                scope.name,
                f"{prefix}{category.replace('_', ' ')} (spelled-out '{term}')",
                1.0,
                rule=f"harm:{category}:spelled-out",
            )
        return None

    def _block_by_model(
        self,
        scope: ScopeConfig,
        vecs: Vectors,
        texts: Sequence[str],
        *,
        answer: bool,
        vouched: int = 0,
        intent_score: float | None = None,
    ) -> GateResult | None:
        """Block on the harm/jailbreak classifier; the first `vouched` views are an operator's example.
        `intent_score`: the intent screen's score of the first view, when the caller computed it already."""
        harm = self._models.harm
        proba = harm.probabilities(vecs)
        # A view that is plainly about the scope (it is close to one of the scope's texts or restates its
        # material) is not taken for a harmful request on the embedding classifier's word alone: it misreads
        # some plain facts ("fines were eliminated in 2022"). Rules still apply, and a harmful clause wrapped
        # in an in-scope frame is its own view, which is not about the scope. The topic classifier's certainty
        # is not trust: it was sure of "what's the best way to poison a neighbor's dog" at a parks department.
        index = self._index(scope)
        trusted = _nearest(vecs, index.pos_vecs) >= TRUSTED_SIMILARITY
        trusted |= _nearest(vecs, index.other_vecs) >= TRUSTED_SIMILARITY
        # A sentence that restates one of the scope's knowledge passages is the scope's own material.
        knowledge = self._knowledge.get(scope.name)
        if knowledge is not None:
            trusted |= np.array([knowledge.restates(t) for t in texts], dtype=bool)
        # A question short enough to read as one request for help or one report (see HELP_MAX_WORDS), lower-cased.
        asked = texts[0].lower() if not answer and texts and len(texts[0].split()) <= HELP_MAX_WORDS else None
        if vouched:
            # An operator vouched for this very question (one of the scope's examples, e.g. from a moderator's
            # "should have answered"): its own views are trusted; the recent turns joined with it are not.
            trusted[:vouched] = True
        elif asked is not None and HELP_SEEKING.search(asked):
            # Someone asking for help as a victim or about a danger ("is that text a scam?", "someone took our
            # cooler, who do we report it to?") shares the classifier's words for fraud and theft.
            trusted[:] = True
        # Clause and sentence views with one content word carry no request of their own (see MIN_VIEW_TERMS).
        trusted[1 : len(texts)] |= np.array([len(terms(t)) < MIN_VIEW_TERMS for t in texts[1:]], dtype=bool)
        proba[trusted, HARM] = 0.0
        if asked is not None and THIRD_PARTY_REPORT.search(asked) and not ASKER_ACTS.search(asked):
            proba[:, HARM] = 0.0  # a report of what someone else does: the intent screen and the rules judge it
        threshold = max(harm.harm_threshold, ANSWER_HARM_FLOOR) if answer else harm.harm_threshold
        # A view the classifier would block that is nearer to a known ordinary question than to any known harmful
        # request ("my grandmother … could someone bring food to her house?") is not blocked on its word alone.
        harm.unflag_like_benign(proba, vecs, HARM, threshold)
        if not answer:
            intent_score = self._confirm_harm(proba[:, HARM], texts, threshold, intent_score)
        i_harm = int(proba[:, HARM].argmax())
        if proba[i_harm, HARM] >= threshold:
            category = harm.category(vecs[i_harm])
            if category == "jailbreak":
                category = "harmful request"
            score = float(proba[i_harm, HARM])
            what = "answer screened as" if answer else "screened as"
            return GateResult(
                "block", scope.name, f"{what} {category.replace('_', ' ')} ({score:.2f})", score,
                rule=f"harm:{category}:model",
            )  # fmt: skip
        if not answer:
            # The jailbreak column too: a view nearer to an ordinary message than to any known jailbreak prompt.
            harm.unflag_like_benign(proba, vecs, JAILBREAK, harm.jailbreak_threshold)
        i_jb = int(proba[:, JAILBREAK].argmax())
        if not answer and proba[i_jb, JAILBREAK] >= harm.jailbreak_threshold:
            score = float(proba[i_jb, JAILBREAK])
            return GateResult(
                "block", scope.name, f"jailbreak or prompt injection ({score:.2f})", score, rule="harm:jailbreak:model"
            )
        intent_threshold = self._intent_threshold()
        if not answer and intent_threshold is not None:
            # A harmful request asked as a plain question about the scope's own business has no harmful word for
            # the screen above; the intent screen was fitted on such requests against customers' questions.
            n = min(INTENT_VIEWS, len(vecs))
            s_intent = (
                np.array([intent_score])
                if intent_score is not None and n == 1
                else self._intent_scores(texts[:n], vecs[:n])
            )
            s_intent[trusted[:n]] = -np.inf
            i = int(s_intent.argmax())
            if s_intent[i] >= intent_threshold:
                intent = self._models.intent
                category = (intent.category(vecs[i]) if intent is not None else None) or harm.category(vecs[i])
                category = "harmful request" if category == "jailbreak" else category.replace("_", " ")
                score = float(s_intent[i])
                return GateResult(
                    "block", scope.name,
                    f"screened as {category}: the intent of the request (score {score:.2f} ≥ {intent_threshold:.2f})",
                    1.0, rule=f"harm:{category.replace(' ', '_')}:intent",
                )  # fmt: skip
        return None

    def _confirm_harm(
        self, harmful: np.ndarray, texts: Sequence[str], threshold: float, intent_score: float | None
    ) -> float | None:
        """Clear the harm probability of flagged views short of `HARM_SURE` when the intent encoder reads harm neither
        in the whole question nor in the view, most probable first, until one is confirmed (`harmful` is changed in
        place). `intent_score` is the encoder's score of the whole question (the first view) when known; returned,
        with the encoder's if it scored that view here."""
        encoder = self._models.intent_encoder
        bar = encoder.harm_confirm if encoder is not None else None
        if encoder is None or bar is None:
            return intent_score
        unsure = np.flatnonzero((harmful >= threshold) & (harmful < HARM_SURE))
        if not len(unsure):
            return intent_score
        # The encoder reads whole questions: a clause keeps its flag if the question it came from reads as harmful.
        if intent_score is None:
            intent_score = float(encoder.scores(texts[:1])[0])
        if intent_score >= bar:
            return intent_score
        for i in unsure[np.argsort(-harmful[unsure], kind="stable")]:
            if i and float(encoder.scores([texts[i]])[0]) >= bar:
                break
            harmful[i] = 0.0
        return intent_score

    def _intent_scores(self, texts: Sequence[str], vecs: Vectors) -> np.ndarray:
        """The intent screen's scores of these views: the fine-tuned encoder's when it is shipped, else the
        support vector machine's on their embeddings."""
        encoder = self._models.intent_encoder
        if encoder is not None:
            return np.asarray(encoder.scores(texts), dtype=np.float64)
        intent = self._models.intent
        assert intent is not None
        return intent.batch_scores(vecs) if len(vecs) > 1 else intent.scores(vecs)

    def _intent_threshold(self) -> float | None:
        """The threshold of the intent screen in use (see `_intent_scores`); None: the weights have no intent screen."""
        encoder, intent = self._models.intent_encoder, self._models.intent
        return encoder.threshold if encoder is not None else intent.threshold if intent is not None else None

    def decide(
        self, scope: ScopeConfig, prepared: _Prepared, vecs: Vectors, *, intent_score: float | None = None
    ) -> GateResult:
        """The verdict on a prepared question, given the vectors of `prepared.texts` (and, from a batch, the
        intent screen's score of its first view)."""
        norm = prepared.norm
        blocked = self._block_by_rules(scope, norm, answer=False) if norm.folded else None
        talk = small_talk(norm.clean)
        if talk is not None and blocked is None:
            # A greeting, thanks, "ok" or "what can you do?" and nothing else: the scope introduces itself (its
            # earlier turns do not matter, there is no request here to complete).
            return GateResult(
                "refuse", scope.name, f"small talk ({talk}), answered with the scope's introduction", 0.0,
                rule=f"{SMALL_TALK_RULE}:{talk}",
            )  # fmt: skip
        if not norm.folded:
            return GateResult("refuse", scope.name, "no question to answer", 0.0, rule="topic")
        if blocked is None and prepared.history is not None:
            blocked = self._block_by_rules(scope, prepared.history, answer=False)
        if blocked is not None:
            return blocked
        index = self._index(scope)
        asked = what_is_asked(
            norm.clean,
            norm.folded,
            uses=index.uses,
            vocabulary=index.vocabulary,
            creative=scope.creative,
            general_knowledge=scope.general_knowledge,
            names=_names(scope.description, tuple(scope.aliases)),
            cased=norm.cased,
        )
        listed = index.is_example(norm.clean)
        if asked is None or asked.rule != "topic:service" or prepared.history is not None:
            vouched = len(prepared.texts) - (prepared.history is not None) if listed else 0
            blocked = self._block_by_model(
                scope, vecs, prepared.texts, answer=False, vouched=vouched, intent_score=intent_score
            )
            if blocked is not None:
                # The learned screens read English: in another language they take ordinary questions for harm ("¿Me
                # pueden imprimir las instrucciones del medicamento en español?" as violence). Not answered either
                # way, the asker is told the language is why, in words they may read; the rules still block.
                language = other_language(norm.clean) if learned_block(blocked.rule) else None
                if language is None:
                    return blocked
                return GateResult(
                    "refuse", scope.name,
                    f"written in {language}, which the gate cannot read (its learned screens read it as: "
                    f"{blocked.reason}); not answered", blocked.score, rule=f"{LANGUAGE_RULE}:{language}",
                )  # fmt: skip
        if listed:
            # An operator listed this very question (in the file or at run time, e.g. from a moderator's
            # "should have answered"): it is answered, after the harm screens above.
            return GateResult(
                "answer", scope.name, "one of the scope's example questions", 1.0, rule="topic:example",
                nearest=norm.clean,
            )  # fmt: skip
        if asked is not None:
            score = 1.0 if asked.verdict == "answer" else 0.0
            return GateResult(asked.verdict, scope.name, asked.reason, score, rule=asked.rule)
        # The topic classifier judges the whole question (the first view, `norm.clean`).
        features = index.features(vecs[:1], prepared.texts[:1])
        p = float(self._models.topic.probability(features)[0])
        shared = float(features[0, _LEX_IN]) >= UNSHARED_WORDS
        lowered = norm.clean.lower()
        safety = asks_about_safety(lowered)
        advice = not safety and asks_for_general_advice(lowered)
        threshold = self._models.topic.threshold_for(scope.strictness, safety=safety, advice=advice)
        example, similarity = index.nearest(vecs[0])
        kind = ", a safety question" if safety else ", general advice" if advice else ""
        if p >= threshold and (similarity < NEAREST_FLOOR or (not shared and similarity < UNSHARED_FLOOR)):
            far = similarity < NEAREST_FLOOR
            floor, words = (NEAREST_FLOOR, "") if far else (UNSHARED_FLOOR, ", few words in common")
            return GateResult(
                "refuse", scope.name,
                f"out of scope: the classifier's {p:.2f} rests on nothing near it in the scope's texts (nearest "
                f"{example!r}, {similarity:.3f} < {floor}{words})", similarity, rule="topic", nearest=example,
            )  # fmt: skip
        if p >= threshold:
            return GateResult(
                "answer", scope.name,
                f"in scope ({p:.2f} ≥ {threshold:.2f}{kind}); closest: {example!r} ({similarity:.2f})",
                p, rule="topic", nearest=example,
            )  # fmt: skip
        if own_booking(norm.clean, index.vocabulary):
            # Something the asker has with the organisation, to move, cancel or copy: the classifier reads the reasons
            # people give ("stuck at work", "my bus is late") and not the booking. The harm screens ran above.
            return GateResult(
                "answer", scope.name,
                f"about the asker's own booking, order or account with this scope (the classifier's {p:.2f} < "
                f"{threshold:.2f}); closest: {example!r} ({similarity:.2f})", p, rule=OWN_BOOKING_RULE, nearest=example,
            )  # fmt: skip
        language = other_language(norm.clean)
        if language is not None:
            # Refused, but the asker is told why in words they may read, not with the scope's English refusal line.
            return GateResult(
                "refuse", scope.name,
                f"written in {language}, which the gate cannot read; out of scope ({p:.2f} < {threshold:.2f})",
                p, rule=f"{LANGUAGE_RULE}:{language}", nearest=example,
            )  # fmt: skip
        return GateResult(
            "refuse", scope.name,
            f"out of scope ({p:.2f} < {threshold:.2f}{kind}); nearest in-scope example: {example!r} ({similarity:.2f})",
            p, rule="topic", nearest=example,
        )  # fmt: skip

    # -- entry points ---------------------------------------------------------------------------

    def check(self, scope: ScopeConfig, texts: Sequence[str]) -> list[GateResult]:
        """Verdicts for many questions at once (blocking, one batched embedding): the CLI's path."""
        prepared = [self.prepare(t) for t in texts]
        flat = [t for p in prepared for t in p.texts]
        vecs = self._embed.encode(flat, batch_size=128) if flat else np.zeros((0, DIM), np.float32)
        starts = np.cumsum([0, *(len(p.texts) for p in prepared)])
        firsts = [int(i) for i, p in zip(starts, prepared, strict=False) if p.texts]
        # The support vector machine scores the whole batch in one matrix product. The fine-tuned encoder reads one
        # question at a time anyway (`IntentEncoder.scores`), so it runs only for the questions that reach it.
        intent = self._models.intent if self._models.intent_encoder is None else None
        scores = dict(zip(firsts, intent.batch_scores(vecs[firsts]), strict=True)) if intent and firsts else {}
        return [
            self.decide(scope, p, vecs[start : start + len(p.texts)], intent_score=scores.get(int(start)))
            for start, p in zip(starts, prepared, strict=False)
        ]

    async def screen_prompt(self, scope: ScopeConfig, text: str, *, history: Sequence[str] = ()) -> GateResult:
        """Decide on a question; `history` holds the same person's recent turns in the thread, oldest first."""
        prepared = self.prepare(text, history)
        if prepared.norm.folded:
            early = self._block_by_rules(scope, prepared.norm, answer=False)
            if early is not None:
                return early
        vecs = await self._embed.aencode(prepared.texts)
        # Off the event loop: the intent screen's encoder runs a forward pass of its own inside `decide`.
        return await asyncio.to_thread(self.decide, scope, prepared, vecs)

    async def screen_answer(self, scope: ScopeConfig, text: str) -> GateResult:
        """Decide whether the model's answer so far may be shown (`answer`) or must be withheld (`block`)."""
        norm = normalize(text)
        blocked = self._block_by_rules(scope, norm, answer=True)
        if blocked is None and norm.clean:
            # Sentences already screened come from the embedder's cache: only the new text costs.
            texts = views(norm.clean, answer=True)
            blocked = self._block_by_model(scope, await self._embed.aencode(texts), texts, answer=True)
        return blocked or GateResult("answer", scope.name, "answer passed the screens", 0.0)
