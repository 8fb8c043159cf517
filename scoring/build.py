"""How a scoring process is put together: one place for the CLI (`finsent score`, `run`, `backfill`) and the
benchmarks, so none of them wires the worker by hand or forgets a step."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.transport import Transport
from model.scorer import Scorer
from scoring.metrics import WorkerMetrics, batch_hook
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor, freeze_startup_objects
from scoring.worker import ScoringWorker


def build_processor(*, session_factory: sessionmaker[Session], scorer: Scorer, top_k: int = 5) -> BatchProcessor:
    """A batch processor with its pipeline (the ticker dictionary is built now), the start-up objects frozen."""
    processor = BatchProcessor(session_factory=session_factory, scorer=scorer, pipeline=Pipeline(), top_k=top_k)
    freeze_startup_objects()
    return processor


def build_worker(
    *, settings: Settings, transport: Transport, processor: BatchProcessor, metrics: WorkerMetrics | None = None
) -> ScoringWorker:
    """A worker consuming `settings.topic_raw` in the consumer group; with `metrics`, every batch is recorded."""
    return ScoringWorker(
        transport=transport,
        processor=processor,
        topic=settings.topic_raw,
        dlq_topic=settings.topic_dlq,
        group=settings.consumer_group,
        max_batch=settings.batch_max_size,
        max_delay_s=settings.batch_max_delay_s,
        on_batch=batch_hook(metrics, transport=transport) if metrics is not None else None,
    )
