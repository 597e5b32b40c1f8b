"""Webhooks: a project's events POSTed, signed, to URLs that staff registered.

Deliveries follow Standard Webhooks 1.0 (https://www.standardwebhooks.com/, its
specification spec/standard-webhooks.md): the body is ``{"type", "timestamp", "data"}``
as JSON; the headers are ``webhook-id`` (the delivery's id, the same on every attempt, so
a receiver can drop repeats), ``webhook-timestamp`` (the attempt's Unix time in seconds) and
``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``
keyed with the secret's bytes (the base64 after ``whsec_``), computed by the
``standardwebhooks`` package, so any of that specification's libraries verifies it.

emit() writes one delivery row per subscribed webhook in the caller's transaction and sends
the task ``labeling.deliver_webhook`` for each once it commits. The task makes one attempt
(attempt_delivery); a failed one is tried again after WEBHOOK_RETRY_BASE_S × 2^(n − 1)
seconds, up to WEBHOOK_MAX_ATTEMPTS attempts in all. Webhooks POST to whatever URL staff
give (WEBHOOK_ALLOWED_HOSTS may limit the hosts).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.http.request import validate_host
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from core.errors import Conflict, InvalidInput, NotFound
from labeling.models import Judgement, Project, Webhook, WebhookDelivery

log = logging.getLogger(__name__)

EVENTS = tuple(Webhook.Event.values)
DELIVER_TASK = "labeling.deliver_webhook"  # sent by name: labeling.tasks imports this module
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # generated secrets; Standard Webhooks asks for 24 to 64 random bytes
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_URL_CHARS = 2000
ERROR_MAX_CHARS = 500  # of a failed attempt's error, as kept on the delivery
REPLY_PEEK_BYTES = 200  # of a receiver's non-2xx reply, quoted in the error
USER_AGENT = "rlhf-platform-webhooks/1"


# --- registering -----------------------------------------------------------------------------
def generate_secret() -> str:
    """A fresh secret in the Standard Webhooks format: ``whsec_`` + base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` and the base64 of 24 to 64 bytes; else InvalidInput."""
    hint = (
        f"secret must be {SECRET_PREFIX!r} followed by the base64 of {MIN_SECRET_BYTES} to "
        f"{MAX_SECRET_BYTES} random bytes; leave it out to have one generated"
    )
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput(f"{hint} (it does not start with {SECRET_PREFIX!r}).")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{hint} (what follows {SECRET_PREFIX!r} is not base64).") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidInput(f"{hint} (it holds {len(key)} bytes).")
    return secret


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL to a host that WEBHOOK_ALLOWED_HOSTS allows (any,
    when that setting is empty); else InvalidInput naming it."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"url must be at most {MAX_URL_CHARS} characters long.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput(f"url must not contain spaces or control characters; got {url!r}.")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError:
        raise InvalidInput(f"url has an invalid port; got {url!r}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url must be an http:// or https:// URL with a host; got {url!r}.")
    allowed = settings.WEBHOOK_ALLOWED_HOSTS
    if allowed and not validate_host(parts.hostname, allowed):
        raise InvalidInput(
            f"url's host {parts.hostname!r} is not one that webhooks may be sent to "
            f"(WEBHOOK_ALLOWED_HOSTS: {', '.join(allowed)})."
        )
    return url


def check_events(events: list[str]) -> list[str]:
    """The event names, each once and in the order given; InvalidInput naming an unknown one."""
    if not events:
        raise InvalidInput(f"events must name at least one of {', '.join(EVENTS)}.")
    for event in events:
        if event not in EVENTS:
            raise InvalidInput(f"events: unknown event {event!r}; choose from {', '.join(EVENTS)}.")
    return list(dict.fromkeys(events))


def create_webhook(
    *,
    project: Project,
    url: str,
    events: list[str],
    secret: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Webhook:
    """Register a webhook on ``project`` (a secret generated when none is given; the
    caller shows ``webhook.secret`` once). Conflict when the project already has
    WEBHOOK_MAX_PER_PROJECT webhooks; InvalidInput naming a bad url, event or secret."""
    url, events = check_url(url), check_events(events)
    secret = check_secret(secret) if secret is not None else generate_secret()
    with transaction.atomic():
        # The project's row lock serialises creates and deletes: the bound and
        # has_webhooks hold under concurrent requests.
        locked = Project.objects.select_for_update().get(pk=project.pk)
        limit = settings.WEBHOOK_MAX_PER_PROJECT
        if Webhook.objects.filter(project=locked).count() >= limit:
            raise Conflict(
                f"Project {project.slug!r} has {limit} webhooks, the most it may have "
                "(WEBHOOK_MAX_PER_PROJECT); delete one first."
            )
        webhook = Webhook.objects.create(
            project=locked, url=url, events=events, secret=secret, created_by=created_by
        )
        if not locked.has_webhooks:
            Project.objects.filter(pk=project.pk).update(has_webhooks=True)
    project.has_webhooks = True
    return webhook


def delete_webhook(*, project: Project, webhook_id: int) -> None:
    """Delete the webhook and its deliveries' log; NotFound unless it is ``project``'s."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        webhook = Webhook.objects.filter(project=project, pk=webhook_id).first()
        if webhook is None:
            raise NotFound(f"No webhook {webhook_id} in project {project.slug!r}.")
        webhook.delete()
        if not Webhook.objects.filter(project=project).exists():
            Project.objects.filter(pk=project.pk).update(has_webhooks=False)
            project.has_webhooks = False


# --- emitting --------------------------------------------------------------------------------
def emit(*, project_id: int, event: str, payload: dict) -> list[int]:
    """Queue ``event`` for every active webhook of the project that subscribed to it: a
    delivery row each, written in the caller's transaction, and its task sent once that
    commits. ``payload`` (JSON-able; datetimes allowed) becomes the body's ``data``, with
    the project's slug added. Returns the deliveries' ids. One query when none subscribed;
    a caller on a hot path asks ``project.has_webhooks`` first."""
    event = str(event)
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}; events are Webhook.Event.")
    hooks = list(
        Webhook.objects.filter(project_id=project_id, active=True, events__contains=[event])
        .values_list("pk", "project__slug")
        .order_by("pk")
    )
    if not hooks:
        return []
    body = {"type": event, "timestamp": timezone.now(), "data": {"project": hooks[0][1], **payload}}
    body = json.loads(json.dumps(body, cls=DjangoJSONEncoder))  # as it is stored and sent
    event_id = uuid.uuid4()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook_id=pk, event=event, event_id=event_id, payload=body)
        for pk, _ in hooks
    )
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: _send_tasks(ids))
    return ids


def judgement_payload(judgement: Judgement) -> dict:
    """The ``data`` of a ``judgement.created`` event."""
    return {
        "judgement_id": judgement.pk,
        "comparison_id": judgement.comparison_id,
        "annotator": judgement.annotator.get_username(),
        "choice": judgement.choice,
        "ranking": judgement.ranking,
        "created_at": judgement.created_at,
    }


def _send_tasks(delivery_ids: list[int]) -> None:
    """Send each delivery's task; a broker outage is logged, not raised (what emitted the
    event has committed), and leaves the delivery pending."""
    for delivery_id in delivery_ids:
        try:
            current_app.send_task(DELIVER_TASK, args=[delivery_id])
        except Exception:
            log.exception("could not send webhook delivery %s; it stays pending", delivery_id)


def resend_stale_deliveries(*, now: datetime | None = None) -> int:
    """Send again the tasks of pending deliveries whose message was lost: never tried and
    older than WEBHOOK_RESEND_AFTER_S, a retry overdue by that long, or an attempt whose
    worker died mid-POST (its claim counted, no retry set). Periodic (beat); returns how
    many were sent. A duplicate of a message that was only late costs one early attempt,
    which receivers drop by its webhook-id."""
    now = now or timezone.now()
    late = now - timedelta(seconds=settings.WEBHOOK_RESEND_AFTER_S)
    died = late - timedelta(seconds=settings.WEBHOOK_TIMEOUT_S)
    stale = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )
        .filter(
            Q(attempts=0, created_at__lt=late)
            | Q(next_attempt_at__lt=late)
            | Q(attempts__gt=0, next_attempt_at__isnull=True, last_attempt_at__lt=died)
        )
        .values_list("pk", flat=True)[:1000]
    )
    _send_tasks(stale)
    return len(stale)


# --- delivering ------------------------------------------------------------------------------
def signature_headers(*, secret: str, msg_id: str, timestamp: datetime, body: str) -> dict:
    """The Standard Webhooks headers for ``body`` sent as message ``msg_id`` at ``timestamp``."""
    signature = StandardWebhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def retry_delay_s(attempts: int) -> float:
    """How long to wait after the ``attempts``-th failed attempt: exponential backoff."""
    return settings.WEBHOOK_RETRY_BASE_S * 2 ** (attempts - 1)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to: ``status`` is the delivery's (pending while a retry is
    due, in ``retry_in_s`` seconds) or "not claimed" when there was nothing to do."""

    status: str
    retry_in_s: float | None = None


def attempt_delivery(delivery_id: int) -> AttemptResult:
    """The worker's part: claim the pending delivery (a conditional update that counts the
    attempt), POST its body once, and record how that went. A delivery that succeeded,
    failed for good or no longer exists is not claimed, so a redelivered task does nothing."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
        attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
    ).update(attempts=F("attempts") + 1, last_attempt_at=now, next_attempt_at=None)
    if not claimed:
        return AttemptResult("not claimed")
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its webhook was deleted a moment ago
        return AttemptResult("not claimed")
    code, error, final = _post_once(delivery, now=now)
    succeeded = code is not None and 200 <= code < 300
    fields = {"last_status_code": code, "last_error": _storable(error)[:ERROR_MAX_CHARS]}
    retry_in = None
    if succeeded:
        fields.update(status=WebhookDelivery.Status.SUCCEEDED, finished_at=timezone.now())
    elif final or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=WebhookDelivery.Status.FAILED, finished_at=timezone.now())
    else:
        retry_in = retry_delay_s(delivery.attempts)
        fields.update(next_attempt_at=timezone.now() + timedelta(seconds=retry_in))
    WebhookDelivery.objects.filter(pk=delivery_id).update(**fields)
    return AttemptResult(fields.get("status", WebhookDelivery.Status.PENDING), retry_in)


def _post_once(delivery: WebhookDelivery, *, now: datetime) -> tuple[int | None, str, bool]:
    """(the receiver's status code or None, what went wrong or "", whether trying again is
    pointless) for one POST of the delivery's body."""
    webhook = delivery.webhook
    if not webhook.active:
        return None, "the webhook is inactive", True
    try:
        check_url(webhook.url)  # WEBHOOK_ALLOWED_HOSTS may have changed since it was made
    except InvalidInput as exc:
        return None, exc.message, True
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signature_headers(
            secret=webhook.secret, msg_id=str(delivery.pk), timestamp=now, body=body
        ),
    }
    request = urllib.request.Request(
        webhook.url, data=body.encode(), headers=headers, method="POST"
    )
    try:
        with _OPENER.open(request, timeout=settings.WEBHOOK_TIMEOUT_S) as response:
            return response.status, "", False
    except urllib.error.HTTPError as exc:  # an answer, but not a 2xx (a 3xx is not followed)
        try:
            reply = exc.read(REPLY_PEEK_BYTES).decode("utf-8", "replace")
        except Exception:
            reply = ""
        finally:
            exc.close()
        return exc.code, f"HTTP {exc.code}: {reply}".strip(), False
    except Exception as exc:  # refused, timed out, DNS, TLS, a malformed reply
        reason = getattr(exc, "reason", None) or exc
        return None, f"{type(exc).__name__}: {reason}", False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer, not followed (it could point anywhere)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _storable(text: str) -> str:
    """``text`` without what PostgreSQL cannot store (NUL, lone surrogates)."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
