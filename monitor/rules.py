"""Alert rules, declared in TOML (see monitor.example.toml), and their evaluation into findings.

A finding is a condition that holds now for one set of labels (rule + ticker or source); `monitor.alerts` turns
findings into alerts with a lifecycle. Rule types:

- `negative_burst`: at least `min_stories` stories about a ticker in `window` whose most confident article is
  negative with confidence ≥ `min_confidence`.
- `sentiment_shift`: the window's mean score is `z` standard deviations below (`direction = "below"`), above, or
  either side of the ticker's baseline, with at least `min_stories` stories in the window and a baseline of at
  least `min_baseline_buckets` active buckets.
- `volume_spike`: the window's story count is `z` standard deviations above the baseline's and at least
  `min_stories`, for a ticker with news in at least `min_baseline_buckets` windows of its baseline.
- `watchlist`: any story in `window` about one of `tickers` with p(negative) ≥ `min_negative`.
- `source_silent`: a source stored nothing for `k` times its usual interval between items (median over its last
  `history` items), or its last poll failed and it has not succeeded for `failed_for`.

Every rule has `name`, `for` (how long the condition must hold before the alert fires), `keep_firing_for` (how long
a firing alert stays firing after the condition stops holding), `severity`, `labels`,
`annotations` (templates over `{ticker}`, `{source}`, `{value}`, `{window}`, `{stories}`, `{baseline}`, …), and
optionally `tickers` to restrict it.
"""

from __future__ import annotations

import os
import statistics
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from core.logs import register_secrets
from core.schema import Article, Mention, Score, Source
from core.sentiment import own, with_own
from monitor.notify import Receiver
from monitor.windows import MARKET, baseline, parse_duration, rolling_all


class RuleConfigError(ValueError):
    """A monitor config that cannot be used; the message names the file and the key."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    for_: str = Field("0s", alias="for")
    keep_firing_for: str = "0s"  # a firing alert stays firing this long after its condition stops holding
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    tickers: list[str] | None = None

    @field_validator("for_", "keep_firing_for")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("annotations")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            try:
                list(Formatter().parse(template))
            except ValueError as exc:
                raise ValueError(f"annotation {key!r}: bad template: {exc}") from None
        return value

    @property
    def for_s(self) -> int:
        return parse_duration(self.for_)

    @property
    def keep_firing_s(self) -> int:
        return parse_duration(self.keep_firing_for)


class _WindowRule(_Rule):
    window: str = "1h"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def window_s(self) -> int:
        return parse_duration(self.window)


class NegativeBurst(_WindowRule):
    type: Literal["negative_burst"]
    min_stories: int = Field(3, ge=1)
    min_confidence: float = Field(0.8, ge=0, le=1)


class SentimentShift(_WindowRule):
    type: Literal["sentiment_shift"]
    z: float = Field(2.0, gt=0)
    direction: Literal["below", "above", "both"] = "below"
    min_stories: int = Field(3, ge=1)
    min_baseline_buckets: int = Field(5, ge=2)
    baseline_days: float = Field(30, gt=0)


class VolumeSpike(_WindowRule):
    type: Literal["volume_spike"]
    z: float = Field(3.0, gt=0)
    min_stories: int = Field(5, ge=1)
    min_baseline_buckets: int = Field(5, ge=1)  # a ticker with no history has no "usual" to spike above
    baseline_days: float = Field(30, gt=0)


class Watchlist(_WindowRule):
    type: Literal["watchlist"]
    tickers: list[str] = Field(min_length=1)
    min_negative: float = Field(0.8, ge=0, le=1)


class SourceSilent(_Rule):
    type: Literal["source_silent"]
    k: float = Field(5.0, gt=1)
    history: int = Field(50, ge=3)
    failed_for: str = "30m"
    sources: list[str] | None = None


Rule = Annotated[NegativeBurst | SentimentShift | VolumeSpike | Watchlist | SourceSilent, Field(discriminator="type")]
RULE = TypeAdapter(Rule)


class MonitorConfig(BaseModel):
    """The whole monitor file: rules, receivers and routing."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list, alias="rule")
    receivers: list[dict[str, Any]] = Field(default_factory=list, alias="receiver")
    route_receivers: list[str] = Field(default_factory=list)  # every notification goes to these receivers
    repeat_interval: str = "4h"
    group_by: list[str] = Field(default_factory=lambda: ["ticker"])
    send_resolved: bool = True

    @field_validator("repeat_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_duration(value)
        return value


def load_config(path: str | Path) -> MonitorConfig:
    """Parse and validate the monitor TOML; RuleConfigError names the file, the rule and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleConfigError(f"{path}: TOML syntax error: {exc}") from None
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise RuleConfigError(f"{path}: `rule` must be an array of tables ([[rule]])")
    for i, raw in enumerate(rules):
        where = f"{path}: rule #{i + 1}" + (f" ({raw.get('name')!r})" if isinstance(raw, dict) else "")
        if not isinstance(raw, dict):
            raise RuleConfigError(f"{where}: must be a table")
        if raw.get("type") not in ("negative_burst", "sentiment_shift", "volume_spike", "watchlist", "source_silent"):
            raise RuleConfigError(
                f"{where}: type: unknown rule type {raw.get('type')!r} (negative_burst, sentiment_shift, "
                "volume_spike, watchlist, source_silent)"
            )
        try:
            RULE.validate_python(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            key = ".".join(str(p) for p in err["loc"][1:]) or "rule"
            raise RuleConfigError(f"{where}: {key}: {err['msg'].removeprefix('Value error, ')}") from None
    try:
        config = MonitorConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in err["loc"])
        raise RuleConfigError(f"{path}: {key}: {err['msg'].removeprefix('Value error, ')}") from None
    names = [r.name for r in config.rules]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise RuleConfigError(f"{path}: rule name {duplicate!r} is used twice")
    known = {r.get("name") for r in config.receivers}
    for name in config.route_receivers:
        if name not in known:
            raise RuleConfigError(f"{path}: route_receivers: no [[receiver]] named {name!r}")
    return config


def describe_config(config: MonitorConfig) -> str:
    """What a monitor config holds, in a few words: `3 rule(s), 1 receiver(s)`."""
    return f"{len(config.rules)} rule(s), {len(config.receivers)} receiver(s)"


def receivers_of(config: MonitorConfig) -> dict[str, Receiver]:
    """The configured receivers by name, validated; RuleConfigError names the receiver and the field."""
    out = {}
    for i, raw in enumerate(config.receivers):
        try:
            receiver = Receiver.model_validate(raw)
        except ValidationError as exc:  # one line: the first error's field and reason (inputs hidden: secrets)
            err = exc.errors(include_url=False)[0]
            key = ".".join(str(p) for p in err["loc"]) or "receiver"
            reason = err["msg"].removeprefix("Value error, ")
            raise RuleConfigError(f"receiver #{i + 1} ({raw.get('name')!r}): {key}: {reason}") from None
        out[receiver.name] = receiver
    return out


def load_monitor_config(path: str | Path) -> MonitorConfig:
    """The monitor file loaded, its receivers validated and its secrets registered for redaction from logs.

    Secrets: a Slack receiver's URL (itself a credential) and the values of the receivers' `secret_env` variables
    that are set. RuleConfigError (one line naming the file, or the receiver, and the key) otherwise."""
    config = load_config(path)
    try:
        receivers = receivers_of(config)
    except RuleConfigError as exc:
        raise RuleConfigError(f"{path}: {exc}") from None
    for receiver in receivers.values():
        register_secrets(
            receiver.url if receiver.kind == "slack" else None,
            os.environ.get(receiver.secret_env) if receiver.secret_env else None,
        )
    return config


def required_secrets(config: MonitorConfig) -> dict[str, str]:
    """Environment variables the config needs, with what each holds: {"HOOK_SECRET": "HMAC secret of receiver 'x'"}."""
    return {
        receiver.secret_env: f"HMAC secret of receiver {receiver.name!r}"
        for receiver in receivers_of(config).values()
        if receiver.secret_env
    }


@dataclass(slots=True)
class Finding:
    """A condition that holds now."""

    rule: _Rule
    labels: dict[str, str]
    value: float
    context: dict[str, Any]
    evidence: list[int] = field(default_factory=list)  # article ids

    @property
    def ticker(self) -> str | None:
        return self.labels.get("ticker")


@dataclass(frozen=True, slots=True)
class Miss:
    """A rule's value for one ticker that did not reach the rule's threshold, and how far it stayed (`short`, in the
    rule's own unit: stories for negative_burst, standard deviations for sentiment_shift and volume_spike); a replay
    reports the closest, so thresholds can be tuned with the values they missed."""

    rule: str
    ticker: str
    value: float
    threshold: float
    short: float
    at: datetime


class _Safe(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, context: dict[str, Any]) -> str:
    """A template filled from context; unknown names stay as written, format errors give the raw template."""
    try:
        return Formatter().vformat(template, (), _Safe(context))
    except (ValueError, KeyError, IndexError, TypeError):
        return template


def _labels(rule: _Rule, **extra: str) -> dict[str, str]:
    return {**rule.labels, "alertname": rule.name, "severity": rule.severity, **extra}


def _allowed(rule: _Rule, ticker: str) -> bool:
    return ticker != MARKET and (rule.tickers is None or ticker in rule.tickers)


def evaluate(
    session: Session, rules: list[_Rule], *, now: datetime, version: str | None, misses: list[Miss] | None = None
) -> list[Finding]:
    """Every finding of every rule at `now`; with `misses`, also the values that were computed and fell short."""
    findings: list[Finding] = []

    def missed(rule: _Rule, ticker: str, value: float, threshold: float, short: float) -> None:
        if misses is not None:
            misses.append(Miss(rule.name, ticker, value, threshold, short, now))

    windows: dict[int, dict] = {}

    def window(seconds: int) -> dict:
        if seconds not in windows:
            windows[seconds] = rolling_all(session, window_s=seconds, now=now, version=version) if version else {}
        return windows[seconds]

    for rule in rules:
        if isinstance(rule, SourceSilent):
            findings += _source_silent(session, rule, now)
            continue
        for ticker, stats in window(rule.window_s).items():
            if not _allowed(rule, ticker):
                continue
            ctx = {
                "ticker": ticker,
                "window": rule.window,
                "stories": stats.stories,
                "items": stats.items,
                "mean": stats.mean_score,
            }
            if isinstance(rule, NegativeBurst):
                strong = _confident(session, stats.negative_stories, rule.min_confidence, version, ticker)
                if len(strong) >= rule.min_stories:
                    findings.append(
                        Finding(rule, _labels(rule, ticker=ticker), len(strong), ctx | {"value": len(strong)}, strong)
                    )
                elif strong:
                    missed(rule, ticker, len(strong), rule.min_stories, rule.min_stories - len(strong))
            elif isinstance(rule, Watchlist):
                hits = _negative(session, stats.story_articles, rule.min_negative, version, ticker)
                if hits:
                    findings.append(
                        Finding(rule, _labels(rule, ticker=ticker), len(hits), ctx | {"value": len(hits)}, hits)
                    )
            elif isinstance(rule, SentimentShift):
                if stats.stories < rule.min_stories or stats.mean_score is None:
                    continue
                base = baseline(session, key=ticker, window_s=rule.window_s, now=now, days=rule.baseline_days)
                if base.mean_score is None or not base.std_score or base.active < rule.min_baseline_buckets:
                    continue
                z = (stats.mean_score - base.mean_score) / base.std_score
                short = {"below": z + rule.z, "above": rule.z - z, "both": rule.z - abs(z)}[rule.direction]
                if short > 0:
                    missed(rule, ticker, z, -rule.z if rule.direction == "below" else rule.z, short)
                if short <= 0:
                    findings.append(
                        Finding(
                            rule,
                            _labels(rule, ticker=ticker),
                            z,
                            ctx | {"value": z, "baseline": base.mean_score},
                            stats.story_articles,
                        )
                    )
            elif isinstance(rule, VolumeSpike):
                if stats.stories < rule.min_stories:
                    continue
                base = baseline(session, key=ticker, window_s=rule.window_s, now=now, days=rule.baseline_days)
                if base.active < rule.min_baseline_buckets:
                    continue
                spread = max(base.std_stories, 1.0)  # a quiet ticker's zero spread must not make 1 story a spike
                z = (stats.stories - base.mean_stories) / spread
                if z < rule.z:
                    missed(rule, ticker, z, rule.z, rule.z - z)
                if z >= rule.z:
                    findings.append(
                        Finding(
                            rule,
                            _labels(rule, ticker=ticker),
                            z,
                            ctx | {"value": z, "baseline": base.mean_stories},
                            stats.story_articles,
                        )
                    )
    return findings


def _ticker_scores(version: str, ticker: str, article_ids: list[int], column: str, minimum: float):
    """The articles among `article_ids` whose sentiment for `ticker` (the company's own where it has one,
    core/sentiment.py) has `column` at least `minimum`."""
    value = own(column)
    query = (
        select(Score.article_id)
        .join(Mention, and_(Mention.article_id == Score.article_id, Mention.ticker == ticker))
        .where(Score.article_id.in_(article_ids), Score.model_version == version)
    )
    return with_own(query).where(value >= minimum)


def _confident(session: Session, article_ids: list[int], minimum: float, version: str, ticker: str) -> list[int]:
    if not article_ids:
        return []
    return list(session.scalars(_ticker_scores(version, ticker, article_ids, "confidence", minimum)))


def _negative(session: Session, article_ids: list[int], minimum: float, version: str, ticker: str) -> list[int]:
    if not article_ids:
        return []
    return list(session.scalars(_ticker_scores(version, ticker, article_ids, "p_negative", minimum)))


def _source_silent(session: Session, rule: SourceSilent, now: datetime) -> list[Finding]:
    out = []
    failed_for = timedelta(seconds=parse_duration(rule.failed_for))
    for source in session.scalars(select(Source)):
        if rule.sources is not None and source.name not in rule.sources:
            continue
        times = list(
            session.scalars(
                select(Article.ingested_at)
                .where(Article.source_id == source.id)
                .order_by(Article.ingested_at.desc())
                .limit(rule.history)
            )
        )
        labels = _labels(rule, source=source.name)
        ctx = {"source": source.name}
        failing = source.last_error_at is not None and (
            source.last_success_at is None or source.last_error_at > source.last_success_at
        )
        since_success = now - (source.last_success_at or source.created_at)
        if failing and since_success >= failed_for:
            out.append(
                Finding(
                    rule,
                    labels,
                    since_success.total_seconds(),
                    ctx | {"value": since_success, "error": source.last_error},
                )
            )
            continue
        if len(times) < 3:
            continue
        gaps = [(a - b).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        usual = statistics.median(gaps)
        quiet = (now - times[0]).total_seconds()
        if usual > 0 and quiet >= rule.k * usual:
            out.append(Finding(rule, labels, quiet / usual, ctx | {"value": quiet / usual, "usual_s": usual}))
    return out
