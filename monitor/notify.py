"""Delivers the `notifications` outbox to receivers: signed webhooks, Slack, a Kafka topic, or the log.

The monitor writes one outbox row per (alert state change, receiver) in the transaction that changed the alert;
`deliver_pending` sends the rows that are due, each receiver's oldest first, and commits after each one. Receivers
are served side by side, one thread each, so a slow or hanging receiver delays only its own rows; a receiver's
`timeout_s` bounds a whole attempt (connect, send, and the answer), however slowly the receiver trickles it. A
receiver that is down gets the row again later with exponential backoff (`attempts`, `next_attempt_at`,
`last_error` record why); so does an attempt that shutdown cut short (`stop`). A row marked sent is never picked
again. Delivery is at least once: if the database cannot record a success (a crash between the receiver's 2xx and
the commit, or a shutdown after the receiver got the body but before it answered), that row is sent again, so
receivers dedupe on the `X-Finsent-Notification-Id` header. On PostgreSQL rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several monitor processes never send the same row; on SQLite run one deliverer per
database.

Webhook bodies are the stored payload bytes, exactly (an Alertmanager version 4 body plus each alert's evidence).
When the receiver has `secret_env`, the environment variable of that name holds an HMAC secret and every request
carries `X-Finsent-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<unix time>." + body>`. The timestamp is
signed with the body, so a captured request cannot be replayed after the tolerance (300 s by default).

Verifying a webhook (receiver side, standard library only; `body` is the raw request body, before JSON parsing)::

    import hashlib
    import hmac
    import time


    def verify_finsent(secret: bytes, header: str, body: bytes, tolerance_s: int = 300) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        try:
            timestamp = int(fields["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - timestamp) > tolerance_s:  # too old (a replay) or from a skewed clock
            return False
        expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), fields.get("v1", "").encode())

    # e.g. in a Flask view:
    # ok = verify_finsent(os.environb[b"FINSENT_WEBHOOK_SECRET"], request.headers["X-Finsent-Signature"],
    #                     request.get_data())
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.schema import Notification
from core.transport import Transport, TransportError

log = logging.getLogger("monitor.notify")

SIGNATURE_HEADER = "X-Finsent-Signature"
NOTIFICATION_ID_HEADER = "X-Finsent-Notification-Id"
USER_AGENT = "finsent/0.1 (alert notifier)"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_EVIDENCE_IN_SLACK = 10  # Slack allows 50 blocks a message; the first few headlines say enough
_MAX_ERROR_CHARS = 300
_HALT_POLL_S = 0.1  # how often an attempt in flight looks at the stop signal: what shutdown waits for it, at most
# KafkaTransport is not thread-safe (its pending sends are one list): receivers on the one transport take turns.
_TRANSPORT_LOCK = threading.Lock()


class _DeliveryError(Exception):
    """One attempt failed; the text is the one-line reason stored in `last_error` (no secrets in it)."""


class _Unreachable(_DeliveryError):
    """The receiver did not answer (timeout, refused connection): skip its other rows for the rest of the run."""


class _Interrupted(_Unreachable):
    """Shutdown cut the attempt short: recorded as a failed attempt, so the row is retried later."""


class Receiver(BaseModel):
    """Where notifications for one receiver name go. Secrets come only from the environment (`secret_env`)."""

    # Inputs stay out of error messages: a secret pasted into `secret_env` (or a Slack URL, itself a credential)
    # must not end up in a log line. The messages still name the field and the reason.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "slack", "kafka", "log"]
    url: str | None = Field(default=None, repr=False, validate_default=True)  # Slack webhook URLs carry a token
    secret_env: str | None = None
    timeout_s: float = Field(default=5, gt=0, le=300)
    max_backoff_s: float = Field(default=600, gt=0)
    topic: str = Field(default="alerts", min_length=1, max_length=249)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if value is None:
            if kind in ("webhook", "slack"):
                raise ValueError(f"url is required for a {kind} receiver")
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http:// or https:// URL")
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not _ENV_NAME.match(value):
            raise ValueError("secret_env must be the NAME of an environment variable (letters, digits, _)")
        if info.data.get("kind") != "webhook":
            # Slack and Kafka never see the signature header; a secret there would suggest protection there is none.
            raise ValueError("secret_env applies to webhook receivers only")
        return value

    def secret(self) -> bytes | None:
        """The HMAC secret from the environment; None when no `secret_env` is configured."""
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            # Sending unsigned would teach the receiver to accept unsigned bodies; fail (and retry) instead.
            raise _DeliveryError(f"environment variable {self.secret_env} (the HMAC secret) is not set")
        return value.encode()

    def where(self) -> str:
        """The destination for logs and `last_error`: scheme://host[:port] only (paths and queries hold tokens)."""
        if self.kind == "kafka":
            return f"topic {self.topic}"
        if self.kind == "log":
            return "the log"
        parts = urlsplit(self.url or "")
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@dataclass
class DeliveryReport:
    """What one `deliver_pending` run did."""

    sent: int = 0
    failed: int = 0
    skipped_unknown_receiver: int = 0
    deferred: int = 0  # due rows of a receiver that timed out or refused connections earlier in this run


# ------------------------------------------------------------------------------------------------- signatures


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `X-Finsent-Signature` value: `t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>`."""
    mac = hmac.new(secret, f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """True when `header` signs `body` with `secret` and its timestamp is within `tolerance_s` of `now`."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":  # several v1 values are allowed: a sender may sign with an old and a new secret
            candidates.append(value)
    if timestamp is None or not candidates or abs(int(now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2].encode()
    # Compare every candidate (no early exit), in constant time each.
    return any([hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates])


# ------------------------------------------------------------------------------------------------------- slack


def slack_escape(text: Any) -> str:
    """Text safe inside Slack mrkdwn: `&`, `<`, `>` escaped, so news cannot ping `<!channel>` or inject links."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: Any, limit: int) -> str:
    # Clip before escaping: escaping after keeps entities whole, and 5x the limit stays under Slack's 3000.
    text = " ".join(str(text).split())  # one line: a headline's newlines would break the list layout
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _words(words: Any, n: int = 3) -> list[str]:
    out = []
    for item in words if isinstance(words, list) else []:
        if isinstance(item, list | tuple) and item:
            out.append(str(item[0]))
        if len(out) == n:
            break
    return out


def slack_body(payload: dict) -> dict:
    """A Slack message (`text` fallback plus Block Kit `blocks`) for an Alertmanager-style payload."""
    status = str(payload.get("status", "firing"))
    alerts = [a for a in payload.get("alerts") or [] if isinstance(a, dict)]
    icon = ":white_check_mark:" if status == "resolved" else ":rotating_light:"
    names = sorted({str((a.get("labels") or {}).get("alertname", "alert")) for a in alerts}) or ["alert"]
    tickers = sorted(
        {str((a.get("labels") or {}).get("ticker")) for a in alerts if (a.get("labels") or {}).get("ticker")}
    )
    headline = f"[{status.upper()}] {', '.join(names)}" + (f" {', '.join(tickers)}" if tickers else "")
    first_summary = next(
        (
            str((a.get("annotations") or {}).get("summary"))
            for a in alerts
            if (a.get("annotations") or {}).get("summary")
        ),
        "",
    )
    text = f"{icon} {slack_escape(_clip(headline, 300))}" + (
        f": {slack_escape(_clip(first_summary, 300))}" if first_summary else ""
    )

    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{slack_escape(_clip(headline, 300))}*"}}
    ]
    evidence_left = _MAX_EVIDENCE_IN_SLACK
    for alert in alerts[:10]:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        label_text = "  ".join(
            f"`{slack_escape(_clip(k, 50))}={slack_escape(_clip(v, 100))}`" for k, v in labels.items()
        )
        lines = [label_text] if label_text else []
        if annotations.get("summary"):
            lines.append(f"*{slack_escape(_clip(annotations['summary'], 500))}*")
        if annotations.get("description"):
            lines.append(slack_escape(_clip(annotations["description"], 1000)))
        if lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
        for item in (alert.get("evidence") or [])[:evidence_left]:
            if not isinstance(item, dict):
                continue
            evidence_left -= 1
            line = f"• {slack_escape(_clip(item.get('title', ''), 300))}"
            details = [slack_escape(_clip(item["source"], 80))] if item.get("source") else []
            if isinstance(item.get("score"), int | float):
                details.append(f"score {item['score']:+.2f}")
            if details:
                line += f" ({', '.join(details)})"
            top = _words(item.get("words"))
            if top:
                line += " — top words: " + ", ".join(slack_escape(_clip(w, 40)) for w in top)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return {"text": text, "blocks": blocks}


# ---------------------------------------------------------------------------------------------------- delivery


def _backoff(receiver: Receiver, attempts: int, base_backoff_s: float) -> float:
    exponent = min(max(attempts - 1, 0), 60)  # 2**60 s is past any max_backoff_s, and no float overflow
    return min(receiver.max_backoff_s, base_backoff_s * 2**exponent)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


async def _request(receiver: Receiver, body: bytes, headers: dict[str, str]) -> int:
    """POST and return the status code; never reads the response body (only the status matters)."""
    # No redirects: a signed alert must reach the configured URL or fail, not wherever a 302 points.
    async with (
        httpx.AsyncClient(follow_redirects=False, timeout=receiver.timeout_s) as client,
        client.stream("POST", receiver.url, content=body, headers=headers) as resp,
    ):
        return resp.status_code


async def _within(request: Coroutine[Any, Any, int], *, timeout_s: float, halt: threading.Event) -> int:
    """`request`'s result, cancelled after `timeout_s` in all (TimeoutError) or once `halt` is set (_Interrupted)."""
    # httpx's timeouts are per operation (a byte every second resets the read timeout forever); cancelling the task
    # is the total deadline httpx suggests (encode/httpx#1450), and cancellation closes the connection.
    task = asyncio.ensure_future(request)
    try:
        async with asyncio.timeout(timeout_s):
            while not halt.is_set():
                done, _ = await asyncio.wait({task}, timeout=_HALT_POLL_S)
                if done:
                    return task.result()
        raise _Interrupted("shutdown")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


def _run(attempt: Coroutine[Any, Any, int]) -> int:
    """Run `attempt` on a fresh event loop of this thread (the receivers' threads never share one)."""
    # Not asyncio.run: at the end it waits for the loop's helper threads, and a name lookup (getaddrinfo runs in one
    # and cannot be cancelled) would hold the attempt past its deadline. close() lets that thread finish on its own.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(attempt)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _post(receiver: Receiver, body: bytes, headers: dict[str, str], *, halt: threading.Event) -> int:
    """POST within the receiver's `timeout_s` (connect, send and the answer together) and return the status code."""
    where = receiver.where()
    started = time.monotonic()
    try:
        status = _run(_within(_request(receiver, body, headers), timeout_s=receiver.timeout_s, halt=halt))
    except _Interrupted:
        elapsed = time.monotonic() - started
        raise _Interrupted(f"shutdown cut the attempt short after {elapsed:.1f} s posting to {where}") from None
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise _Unreachable(f"timeout after {receiver.timeout_s:g} s posting to {where} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        # httpx messages may quote the URL, and the URL may carry a token: replace it by the bare origin.
        reason = str(exc).replace(receiver.url or "", where) or "no details"
        raise _Unreachable(f"{type(exc).__name__} posting to {where}: {reason}") from exc
    if not 200 <= status < 300:
        raise _DeliveryError(f"HTTP {status} from {where}")
    return status


def _send(
    row: Notification, receiver: Receiver, *, now: datetime, transport: Transport | None, halt: threading.Event
) -> str:
    """Deliver one row; returns a short outcome for the log, raises _DeliveryError with the reason on failure."""
    body = row.payload.encode("utf-8")
    if receiver.kind == "webhook":
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            NOTIFICATION_ID_HEADER: str(row.id),
        }
        secret = receiver.secret()
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body, int(now.timestamp()))
        return f"HTTP {_post(receiver, body, headers, halt=halt)}"

    try:
        payload = json.loads(row.payload)
    except ValueError as exc:
        raise _DeliveryError(f"stored payload is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise _DeliveryError("stored payload is not a JSON object")

    if receiver.kind == "slack":
        slack = json.dumps(slack_body(payload), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        return f"HTTP {_post(receiver, slack, headers, halt=halt)}"

    if receiver.kind == "kafka":
        if transport is None:
            raise _DeliveryError("no transport given to deliver_pending for a kafka receiver")
        alerts = payload.get("alerts") or [{}]
        key = str(alerts[0].get("fingerprint") or f"alert-{row.alert_id}") if isinstance(alerts[0], dict) else None
        try:
            with _TRANSPORT_LOCK:
                transport.publish(receiver.topic, key.encode() if key else None, body)
                transport.flush(timeout_s=receiver.timeout_s)
        except TransportError as exc:
            raise _Unreachable(f"publishing to topic {receiver.topic}: {exc}") from exc
        return f"published to {receiver.topic}"

    # log: one line per alert, summary and evidence count; json.dumps escapes newlines and control characters, so a
    # headline cannot forge extra log lines. The full body is in the outbox row (notifications.payload).
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        log.warning(
            "ALERT %s %s %s %s: %s (%d evidence articles; notification %d)",
            row.kind,
            labels.get("severity", ""),
            labels.get("alertname", ""),
            json.dumps(labels.get("ticker") or labels.get("source") or "", ensure_ascii=True),
            json.dumps((alert.get("annotations") or {}).get("summary", ""), ensure_ascii=True),
            len(alert.get("evidence") or []),
            row.id,
        )
    return "logged"


def _due(now: datetime):
    return (Notification.sent_at.is_(None), Notification.next_attempt_at <= now)


def deliver_pending(
    *,
    session_factory: sessionmaker[Session],
    receivers: dict[str, Receiver],
    now: datetime,
    transport: Transport | None = None,
    limit: int = 100,
    base_backoff_s: float = 1.0,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send up to `limit` due outbox rows per receiver, receivers side by side; never raises for a receiver.

    Each receiver's rows go oldest first, committed one by one. Once `stop` is set the attempts in flight are cut
    short (recorded as failed, so retried later) and this returns within a fraction of a second."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} given as now; pass a timezone-aware datetime")
    report = DeliveryReport()
    with session_factory() as session:
        due: dict[str, int] = dict(
            session.execute(
                select(Notification.receiver, func.count()).where(*_due(now)).group_by(Notification.receiver)
            ).all()
        )
    unknown = {name: n for name, n in due.items() if name not in receivers}
    report.skipped_unknown_receiver = sum(unknown.values())
    if unknown:
        log.warning(
            "%d due notification(s) for receivers that are not configured, left pending: %s",
            report.skipped_unknown_receiver,
            ", ".join(f"{name!r} ({n})" for name, n in sorted(unknown.items())),
        )
    names = [name for name in receivers if name in due]
    if not names or (stop is not None and stop.is_set()):
        return report

    halt = threading.Event()  # `stop`, or an interrupt of the calling thread: every receiver's attempt ends
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="finsent-deliver") as pool:
        futures = [
            pool.submit(
                _deliver_to,
                receivers[name],
                session_factory=session_factory,
                now=now,
                transport=transport,
                limit=limit,
                base_backoff_s=base_backoff_s,
                halt=halt,
            )
            for name in names
        ]
        try:
            while wait_futures(futures, timeout=_HALT_POLL_S).not_done:
                if stop is not None and stop.is_set():
                    halt.set()
        finally:
            halt.set()  # Ctrl-C while waiting: the workers give up too, then leaving `with` joins them
    for future in futures:
        part = future.result()
        report.sent += part.sent
        report.failed += part.failed
        report.deferred += part.deferred
    return report


def _deliver_to(
    receiver: Receiver,
    *,
    session_factory: sessionmaker[Session],
    now: datetime,
    transport: Transport | None,
    limit: int,
    base_backoff_s: float,
    halt: threading.Event,
) -> DeliveryReport:
    """One receiver's due rows in order, until none is left, `limit` are done, it stops answering, or `halt`."""
    report = DeliveryReport()
    last_id = 0
    for _ in range(limit):
        if halt.is_set():
            break
        with session_factory() as session:
            query = (
                select(Notification)
                .where(*_due(now), Notification.id > last_id, Notification.receiver == receiver.name)
                .order_by(Notification.id)
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                # The row stays locked until this row's commit; another deliverer skips it instead of waiting.
                query = query.with_for_update(skip_locked=True)
            row = session.scalars(query).first()
            if row is None:
                break
            last_id = row.id
            try:
                outcome = _send(row, receiver, now=now, transport=transport, halt=halt)
            except _DeliveryError as exc:
                error, tripped = _one_line(str(exc)), isinstance(exc, _Unreachable)
            except Exception as exc:  # a bug or a malformed payload must not stop the other rows
                log.exception("notification %d receiver=%s kind=%s: unexpected error", row.id, row.receiver, row.kind)
                error, tripped = _one_line(f"{type(exc).__name__}: {exc}"), False
            else:
                row.sent_at, row.last_error = now, None
                row.attempts += 1
                session.commit()
                report.sent += 1
                log.info(
                    "notification %d receiver=%s kind=%s attempt=%d: sent (%s)",
                    row.id,
                    row.receiver,
                    row.kind,
                    row.attempts,
                    outcome,
                )
                continue
            row.attempts += 1
            delay = _backoff(receiver, row.attempts, base_backoff_s)
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = error
            session.commit()
            report.failed += 1
            log.warning(
                "notification %d receiver=%s kind=%s attempt=%d: failed, retry in %g s: %s",
                row.id,
                row.receiver,
                row.kind,
                row.attempts,
                delay,
                error,
            )
            if tripped:  # timed out, refused or interrupted: its other rows wait for the next run
                with session_factory() as other:
                    report.deferred = other.scalar(
                        select(func.count())
                        .select_from(Notification)
                        .where(*_due(now), Notification.receiver == receiver.name)
                    )
                break
    return report
