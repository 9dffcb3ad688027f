"""Prometheus metrics of one bot process: a registry per app, what the pipeline reports, and live state at scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

#: Seconds from a question's arrival to its reply: a passages-only answer takes milliseconds, a model answer
#: on a small CPU half a minute or more (the prompt alone is read at about 9-40 tokens/s).
QUESTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
#: The pipeline's timings (milliseconds) reported as stages; the keys of `BotAnswer.timings`.
STAGES = {
    "gate": "gate",
    "retrieval": "retrieval",
    "queue": "queue",
    "model_prompt": "model_prompt",
    "model_first_token": "model_first_token",
    "model_total": "model_generation",
}


class Metrics:
    """The app's registry and the counters and histograms the pipeline reports into."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # process_resident_memory_bytes, CPU seconds, open files: a bot that lives for months must stay flat.
        ProcessCollector(registry=self.registry)
        self.questions = Counter(
            "scopebot_questions",
            "Questions addressed to the bot that reached the pipeline.",
            ["platform", "scope"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "scopebot_verdicts",
            "Questions finished, by verdict (answer, refuse, block, small_talk, busy, error).",
            ["platform", "scope", "verdict"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scopebot_question_duration_seconds",
            "Seconds from a question's arrival to its reply being posted, by verdict.",
            ["verdict"],
            buckets=QUESTION_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "scopebot_question_stage_seconds",
            "Seconds spent in each stage of answering (gate, retrieval, queue, model_*).",
            ["stage"],
            buckets=QUESTION_BUCKETS,
            registry=self.registry,
        )

    def question_started(self, *, platform: str, scope: str) -> None:
        """A question reached the pipeline."""
        self.questions.labels(platform=platform, scope=scope).inc()

    def question_finished(self, *, platform: str, scope: str, verdict: str, timings: Mapping[str, float]) -> None:
        """A question was answered, refused, blocked, turned away or failed; `timings` in milliseconds."""
        self.verdicts.labels(platform=platform, scope=scope, verdict=verdict).inc()
        if "total" in timings:
            self.latency.labels(verdict=verdict).observe(timings["total"] / 1000)
        for key, stage in STAGES.items():
            if key in timings:
                self.stages.labels(stage=stage).observe(timings[key] / 1000)


@dataclass(slots=True)
class Snapshot:
    """Live state read at scrape time; the database part is refreshed (awaited) just before each scrape."""

    model_loaded: bool = False
    model_configured: bool = False
    model_waiting: int = 0
    model_running: bool = False
    model_restarts: int = 0
    platforms: dict[str, bool | None] = field(default_factory=dict)
    database_up: bool = False
    #: Moderation cases per state; None when the database could not be read.
    cases: dict[str, int] | None = None
    #: Reports and answer records kept during a database outage and not yet written.
    spool_waiting: int = 0


class StateCollector:
    """Exposes a `Snapshot` taken when Prometheus scrapes (model queue, restarts, platforms, database, cases)."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        """The live gauges and counters, from one snapshot."""
        s = self._snapshot()
        yield GaugeMetricFamily(
            "scopebot_model_loaded",
            "1 when the model worker is running with the model loaded.",
            value=int(s.model_loaded),
        )
        yield GaugeMetricFamily(
            "scopebot_model_configured", "1 when a model is configured.", value=int(s.model_configured)
        )
        yield GaugeMetricFamily("scopebot_model_queue_depth", "Questions waiting for the model.", value=s.model_waiting)
        yield GaugeMetricFamily(
            "scopebot_model_generating", "1 while the model is answering a question.", value=int(s.model_running)
        )
        yield CounterMetricFamily(
            "scopebot_model_restarts", "Times the model worker was restarted after it died.", value=s.model_restarts
        )
        connected = GaugeMetricFamily(
            "scopebot_platform_connected",
            "1 when the platform is connected (absent when it cannot tell).",
            labels=["platform"],
        )
        for name, up in sorted(s.platforms.items()):
            if up is not None:
                connected.add_metric([name], int(up))
        yield connected
        yield GaugeMetricFamily(
            "scopebot_database_up", "1 when the database answered at the last scrape.", value=int(s.database_up)
        )
        yield GaugeMetricFamily(
            "scopebot_spool_waiting",
            "Reports and answer records kept during a database outage and not yet written.",
            value=s.spool_waiting,
        )
        if s.cases is not None:
            cases = GaugeMetricFamily("scopebot_moderation_cases", "Moderation cases by state.", labels=["state"])
            for state, n in sorted(s.cases.items()):
                cases.add_metric([state], n)
            yield cases
