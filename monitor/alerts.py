"""Alert lifecycle with Alertmanager semantics, stored in the database.

- Identity: a fingerprint hashed from the sorted labels (rule name, severity, ticker or source, the rule's own
  labels). One fingerprint has at most one open episode; every episode is kept (full history in `alert_events`).
- pending → firing once the condition has held for the rule's `for`; firing → resolved when it stops holding
  (a pending alert that stops holding is closed without a notification). With the rule's `keep_firing_for` (as
  Prometheus has it), a firing alert whose condition stops holding stays firing ("cleared") that long, and resolves
  only if the condition has not returned by then: news that comes and goes within it is one episode, not a flap.
  A cleared alert gets no reminders; a rule removed from the config, or whose keep_firing_for is set to 0, lets its
  cleared alerts resolve at the next evaluation.
- Notifications go into the `notifications` outbox in the same transaction as the state change, grouped by
  `group_by` labels (default: ticker), one row per receiver: `firing`, `resolved` (when `send_resolved`) and
  `reminder` every `repeat_interval` while firing and not acknowledged. The unique key of the outbox and the stored
  state make evaluation idempotent: a restarted monitor re-evaluates and sends nothing twice.
- Silences (matchers with =, !=, =~, !~; author, comment, expiry) suppress notifications while active; an alert
  still firing when its silence ends is notified then.
- Each alert keeps its evidence: the articles that made it fire and their top-attended words (monitor.evidence).
- Replay (`replay=True`) records historical alerts flagged `replayed` and notifies nobody.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.schema import Alert, AlertEvent, Notification, Silence
from core.versions import version_note
from monitor.evidence import json_time, load_evidence, record_evidence
from monitor.rules import Finding, Miss, MonitorConfig, SourceSilent, evaluate, render
from monitor.windows import DEFAULT_WINDOWS, parse_duration, update_buckets

STATES = ("pending", "firing", "resolved")  # an alert's lifecycle, in order
OPEN = STATES[:2]
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def subject_of(ticker: str | None, labels: dict[str, str]) -> str:
    """What an alert is about, in a word: its ticker, else its `source` label (a silent source)."""
    return ticker or labels.get("source", "")


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of a label set (sha256 of the sorted labels, 16 hex characters)."""
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


@dataclass(slots=True)
class EvaluationReport:
    findings: int = 0
    pending: int = 0
    fired: int = 0
    resolved: int = 0
    reminders: int = 0
    silenced: int = 0
    notifications: int = 0
    buckets: int = 0
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (event, rule, ticker or source)


# ---------------------------------------------------------------------------------------------------- silences


def parse_matcher(text: str) -> dict[str, str]:
    """`ticker=AAPL`, `alertname=~neg.*`, `severity!=info` → {"name", "op", "value"}; ValueError otherwise."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
    name, op, value = match.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"matcher {text!r}: bad regular expression: {exc}") from None
    return {"name": name, "op": op, "value": value}


def matches(matchers: list[dict[str, str]], labels: dict[str, str]) -> bool:
    """True when every matcher holds for the labels (regexes are anchored, as in Alertmanager)."""
    for m in matchers:
        value = labels.get(m["name"], "")
        if m["op"] == "=" and value != m["value"]:
            return False
        if m["op"] == "!=" and value == m["value"]:
            return False
        if m["op"] == "=~" and not re.fullmatch(m["value"], value):
            return False
        if m["op"] == "!~" and re.fullmatch(m["value"], value):
            return False
    return True


def matchers_text(matchers: list[dict[str, str]]) -> str:
    """Matchers as an operator types them: `ticker=AAPL, alertname=~neg.*`."""
    return ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in matchers)


def add_silence(
    session: Session, *, matchers: list[str], author: str, comment: str, now: datetime, duration: str
) -> Silence:
    """Create a silence active from now for `duration` (e.g. "2h")."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if not author.strip() or not comment.strip():
        raise ValueError("a silence needs an author and a comment")
    parsed = [parse_matcher(m) for m in matchers]
    silence = Silence(
        matchers=json.dumps(parsed),
        author=author.strip(),
        comment=comment.strip(),
        starts_at=now,
        ends_at=now + timedelta(seconds=parse_duration(duration)),
        created_at=now,
    )
    session.add(silence)
    session.flush()
    return silence


def expire_silence(session: Session, silence_id: int, *, now: datetime) -> Silence:
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise LookupError(f"no silence {silence_id}")
    silence.expired_early_at = now
    silence.ends_at = min(silence.ends_at, now)
    return silence


def active_silences(session: Session, now: datetime) -> list[Silence]:
    return list(session.scalars(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)))


def ack(session: Session, alert_id: int, *, by: str, now: datetime, comment: str = "") -> Alert:
    """Acknowledge an alert: no more reminders for this episode (the resolved notification still goes out)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise LookupError(f"no alert {alert_id}")
    alert.acked_by, alert.acked_at, alert.updated_at = by, now, now
    session.add(AlertEvent(alert_id=alert.id, at=now, event="acked", detail=f"{by}: {comment}".strip(": ")))
    return alert


# ------------------------------------------------------------------------------------------------- evaluation


def run_evaluation(
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    now: datetime,
    version: str,
    replay: bool = False,
    misses: list[Miss] | None = None,
) -> EvaluationReport:
    """Fold new articles into the buckets, evaluate every rule at `now` on `version`'s scores (the active model
    version: FINSENT_MODEL_VERSION) and apply the lifecycle, in one transaction; `misses` collects the values that
    fell short of a rule's threshold."""
    with session_factory() as session, session.begin():
        # The standard windows are always kept (the dashboard reads them), plus any other length a rule uses.
        windows = sorted(
            set(DEFAULT_WINDOWS.values()) | {r.window_s for r in config.rules if not isinstance(r, SourceSilent)}
        )
        report = EvaluationReport()
        report.buckets = update_buckets(session, windows=windows, version=version)
        findings = evaluate(session, config.rules, now=now, version=version, misses=misses)
        apply_findings(session, findings, config=config, now=now, replay=replay, report=report, version=version)
        return report


def apply_findings(
    session: Session,
    findings: list[Finding],
    *,
    config: MonitorConfig,
    now: datetime,
    replay: bool = False,
    report: EvaluationReport | None = None,
    version: str | None = None,
) -> EvaluationReport:
    """The lifecycle step for one evaluation: create, fire, remind, resolve; queue grouped notifications."""
    report = report or EvaluationReport()
    report.findings = len(findings)
    open_alerts = {
        a.fingerprint: a
        for a in session.scalars(select(Alert).where(Alert.status.in_(OPEN), Alert.replayed.is_(replay)))
    }
    repeat = timedelta(seconds=parse_duration(config.repeat_interval))
    silences = [(s, json.loads(s.matchers)) for s in active_silences(session, now)] if not replay else []
    outgoing: list[tuple[Alert, str]] = []
    seen: set[str] = set()
    rules = {r.name: r for r in config.rules}

    def event(alert: Alert, name: str, detail: str | None = None) -> None:
        session.add(AlertEvent(alert_id=alert.id, at=now, event=name, detail=detail))
        report.changes.append((name, alert.rule, subject_of(alert.ticker, json.loads(alert.labels))))

    for f in findings:
        fp = fingerprint(f.labels)
        if fp in seen:
            continue
        seen.add(fp)
        context = f.context | {"value": f.value}
        annotations = {k: render(v, context) for k, v in f.rule.annotations.items()}
        alert = open_alerts.get(fp)
        if alert is None:
            alert = Alert(
                fingerprint=fp,
                rule=f.rule.name,
                severity=f.rule.severity,
                ticker=f.ticker,
                labels=json.dumps(f.labels, sort_keys=True),
                annotations=json.dumps(annotations),
                status="pending",
                value=f.value,
                active_at=now,
                replayed=replay,
                updated_at=now,
            )
            session.add(alert)
            session.flush()
            event(alert, "pending", f"value {f.value:.3g}")
            report.pending += 1
        else:
            alert.value, alert.annotations, alert.updated_at = f.value, json.dumps(annotations), now
            if alert.cleared_at is not None:  # back within keep_firing_for: the same episode goes on
                alert.cleared_at = None
                event(alert, "holding", f"condition holds again, value {f.value:.3g}")
        record_evidence(
            session=session, alert_id=alert.id, article_ids=f.evidence, version=version, ticker=alert.ticker
        )
        if alert.status == "pending" and (now - alert.active_at).total_seconds() >= f.rule.for_s:
            alert.status, alert.starts_at = "firing", now
            event(alert, "firing", f"value {f.value:.3g}")
            report.fired += 1
            outgoing.append((alert, "firing"))
        elif alert.status == "firing":
            if alert.last_notified_at is None:
                outgoing.append((alert, "firing"))  # silenced when it fired; the silence has ended
            elif alert.acked_at is None and now - alert.last_notified_at >= repeat:
                outgoing.append((alert, "reminder"))

    for fp, alert in open_alerts.items():
        if fp in seen:
            continue
        was = alert.status
        rule = rules.get(alert.rule)
        keep = rule.keep_firing_s if rule is not None and was == "firing" else 0
        if keep and alert.cleared_at is None:
            alert.cleared_at = alert.updated_at = now
            until = (now + timedelta(seconds=keep)).isoformat(timespec="seconds")
            event(alert, "cleared", f"condition no longer holds; kept firing until {until} unless it returns")
            continue
        if keep and timedelta(0) <= now - alert.cleared_at < timedelta(seconds=keep):
            continue  # still held (an evaluation before the clearing, as a replay of an earlier period, ends it)
        alert.status, alert.ends_at, alert.updated_at = "resolved", now, now
        alert.cleared_at = None
        event(alert, "resolved", "condition no longer holds" + ("" if was == "firing" else " (never fired)"))
        report.resolved += 1
        if was == "firing" and config.send_resolved and alert.last_notified_at is not None:
            outgoing.append((alert, "resolved"))

    if not replay:
        _queue(session, outgoing, config=config, now=now, silences=silences, report=report, event=event)
    return report


def _queue(session, outgoing, *, config, now, silences, report, event) -> None:
    """Group the state changes and write one outbox row per group and receiver."""
    groups: dict[tuple, list[Alert]] = defaultdict(list)
    for alert, kind in outgoing:
        labels = json.loads(alert.labels)
        muted = next((s for s, m in silences if matches(m, labels)), None)
        if muted is not None:
            if kind != "resolved":
                event(alert, "silenced", f"silence {muted.id} by {muted.author}: {muted.comment}")
                report.silenced += 1
                continue
        key = (kind, tuple(labels.get(g, "") for g in config.group_by))
        groups[key].append(alert)
    for (kind, group_values), alerts in groups.items():
        for alert in alerts:
            alert.last_notified_at = now
            if kind == "reminder":
                event(alert, "reminder")
                report.reminders += 1
        if not config.route_receivers:
            continue
        lead = alerts[0]
        group_labels = dict(zip(config.group_by, group_values, strict=True))
        for receiver in config.route_receivers:
            sequence = 0
            if kind == "reminder":  # the n-th reminder of this episode to this receiver
                sequence = 1 + session.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(
                        Notification.alert_id == lead.id, Notification.receiver == receiver, Notification.kind == kind
                    )
                )
            payload = notification_payload(session, alerts, kind=kind, receiver=receiver, group_labels=group_labels)
            session.add(
                Notification(
                    alert_id=lead.id,
                    receiver=receiver,
                    kind=kind,
                    sequence=sequence,
                    payload=json.dumps(payload),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
            report.notifications += 1


NO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's zero time: the payload's times are never null


def notification_payload(
    session: Session, alerts: list[Alert], *, kind: str, receiver: str, group_labels: dict[str, str]
) -> dict:
    """An Alertmanager-compatible webhook body (version 4), with each alert's evidence."""
    status = "resolved" if kind == "resolved" else "firing"
    evidence = load_evidence(session=session, alert_ids=[a.id for a in alerts])
    items = []
    for alert in alerts:
        labels = json.loads(alert.labels)
        items.append(
            {
                "status": "resolved" if alert.status == "resolved" else "firing",
                "labels": labels,
                "annotations": json.loads(alert.annotations),
                "startsAt": json_time(alert.starts_at or alert.active_at) or NO_TIME,
                "endsAt": json_time(alert.ends_at) or NO_TIME,
                "fingerprint": alert.fingerprint,
                "generatorURL": "",
                "evidence": [e.as_json() for e in evidence[alert.id]],
            }
        )
    common = set.intersection(*(set(json.loads(a.labels).items()) for a in alerts)) if alerts else set()
    return {
        "version": "4",
        "status": status,
        "receiver": receiver,
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
        "groupLabels": group_labels,
        "commonLabels": dict(sorted(common)),
        "commonAnnotations": {},
        "externalURL": "",
        "kind": kind,
        "alerts": items,
    }


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts to list (empty tuples: any); replayed history only with `replayed`."""

    tickers: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None  # updated at or after
    limit: int = 100
    replayed: bool = False


def find_alerts(*, session: Session, filters: AlertFilter) -> list[Alert]:
    """Alerts matching `filters`, most recently changed first (the index on updated_at), at most `filters.limit`."""
    query = select(Alert).order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(filters.limit)
    if filters.tickers:
        query = query.where(Alert.ticker.in_(filters.tickers))
    if filters.severities:
        query = query.where(Alert.severity.in_(filters.severities))
    if filters.statuses:
        query = query.where(Alert.status.in_(filters.statuses))
    if filters.since is not None:
        query = query.where(Alert.updated_at >= filters.since)
    if not filters.replayed:
        query = query.where(Alert.replayed.is_(False))
    return list(session.scalars(query))


def last_event_id(session: Session) -> int:
    """The id of the newest alert event (0 when there is none): where following the events starts."""
    return session.scalar(select(func.max(AlertEvent.id))) or 0


def events_after(session: Session, *, after_id: int) -> list[tuple[AlertEvent, Alert]]:
    """Alert events with an id above `after_id`, oldest first, each with its alert."""
    return [
        (event, alert)
        for event, alert in session.execute(
            select(AlertEvent, Alert)
            .join(Alert, Alert.id == AlertEvent.alert_id)
            .where(AlertEvent.id > after_id)
            .order_by(AlertEvent.id)
        )
    ]


CLOSEST = 3  # near misses reported per rule


@dataclass(slots=True)
class ReplayReport:
    """What a replay over history recorded: alerts fired and resolved, over how many evaluations; per rule, how many
    fired and resolved and the closest misses (one per ticker, the nearest to the threshold first); and how many
    replayed alerts of the same period an earlier replay had recorded (replaced, so a replay is idempotent)."""

    fired: int = 0
    resolved: int = 0
    evaluations: int = 0
    note: str | None = None  # set when the range was scored only by other model versions (core.versions)
    replaced: int = 0
    per_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    closest: dict[str, list[Miss]] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """One line per rule: fired, resolved and its closest misses ("ACME z -1.8 vs -2 on 2020-05-06T14:00")."""
        lines = []
        for rule in sorted(set(self.per_rule) | set(self.closest)):
            counts = self.per_rule.get(rule, {})
            near = ", ".join(f"{m.ticker} {m.value:.3g} vs {m.threshold:g} at {m.at:%Y-%m-%dT%H:%M}"
                             for m in self.closest.get(rule, []))  # fmt: skip
            lines.append(f"{rule}: fired {counts.get('firing', 0)}, resolved {counts.get('resolved', 0)}"
                         + (f"; closest misses: {near}" if near else ""))  # fmt: skip
        return lines


def replay_history(
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    since: datetime,
    until: datetime,
    step: timedelta,
    version: str,
) -> ReplayReport:
    """Evaluate the rules on `version`'s scores at since, since + step, ... up to until (inclusive) as `replay`
    alerts, notifying nobody. When no news of [since, until] was scored by `version` but some by another, the
    report's `note` says so (a replay of nothing is not a quiet history)."""
    if step <= timedelta(0):
        raise ValueError(f"the replay step must be positive, got {step}")
    report, now = ReplayReport(), since
    with session_factory() as session, session.begin():
        report.note = version_note(session, version=version, since=since, until=until)
        # What an earlier replay of this period recorded is replaced, not added to: the same period twice gives the
        # same alerts once (their events, evidence and notifications go with them: the foreign keys cascade).
        earlier = select(Alert.id).where(Alert.replayed.is_(True), Alert.active_at >= since, Alert.active_at <= until)
        ids = session.scalars(earlier).all()
        if ids:
            session.execute(delete(Alert).where(Alert.id.in_(ids)))
        report.replaced = len(ids)
    nearest: dict[tuple[str, str], Miss] = {}
    while now <= until:
        misses: list[Miss] = []
        evaluation = run_evaluation(session_factory=session_factory, config=config, now=now, version=version,
                                    replay=True, misses=misses)  # fmt: skip
        report.fired += evaluation.fired
        report.resolved += evaluation.resolved
        report.evaluations += 1
        for event, rule, _subject in evaluation.changes:
            counts = report.per_rule.setdefault(rule, {})
            counts[event] = counts.get(event, 0) + 1
        for miss in misses:
            best = nearest.get((miss.rule, miss.ticker))
            if best is None or miss.short < best.short:
                nearest[(miss.rule, miss.ticker)] = miss
        now += step
    for miss in sorted(nearest.values(), key=lambda m: (m.short, m.ticker)):
        report.closest.setdefault(miss.rule, [])
        if len(report.closest[miss.rule]) < CLOSEST:
            report.closest[miss.rule].append(miss)
    for rule in config.rules:  # a rule that never came near still gets its line
        report.per_rule.setdefault(rule.name, {})
    return report
