"""Webhooks: staff register them (validated, staff only), events become signed deliveries
(Standard Webhooks), a worker POSTs them and retries a failing receiver with backoff, and a
judgement on a project without webhooks costs no query more than before."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from labeling import services, webhooks
from labeling.models import Project, Webhook, WebhookDelivery
from training import services as training_services
from training.models import Policy, Run
from training.steps import STEPS, StepResult

EVENTS = ["judgement.created", "round.finished", "arena.finished"]


# --- helpers ---------------------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers with the next of
    ``codes`` (200 once they run out)."""

    def __init__(self, codes=(), *, redirect_to: str | None = None):
        self.codes = list(codes)
        self.requests: list[tuple[dict, bytes]] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                receiver.received.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = []

    def start(codes=(), **kwargs) -> Receiver:
        started.append(Receiver(codes, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def signature_is_valid(secret: str, headers: dict, body: bytes) -> bool:
    """The Standard Webhooks check, written out: HMAC-SHA256 of "{id}.{timestamp}.{body}"
    keyed with the secret's bytes, base64, among the header's "v1,..." signatures."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


@pytest.fixture
def manager(make_user):
    """A project manager: staff with labeling.change_project, which webhooks need."""
    user = make_user(role="manager")
    assert user.has_perm("labeling.change_project")
    return user


def _register(client, project, **body):
    body = {"url": "https://hooks.example.com/rlhf", "events": ["judgement.created"], **body}
    return client.post(f"/api/projects/{project.slug}/webhooks/", body, format="json")


def _wait_for(delivery_id: int, *, status: str, timeout: float = 30) -> WebhookDelivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if delivery.status == status:
            return delivery
        time.sleep(0.1)
    pytest.fail(f"delivery {delivery_id} is {delivery.status}, not {status}, after {timeout} s")


# --- registering -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_registering_a_webhook_generates_a_standard_secret_shown_only_in_the_answer(
    make_project, manager, api_client_for
):
    project = make_project()
    client = api_client_for(manager)

    created = _register(client, project, events=EVENTS)

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert created.json()["events"] == EVENTS
    assert created.json()["created_by"] == manager.username
    listed = client.get(f"/api/projects/{project.slug}/webhooks/").json()
    assert [hook["id"] for hook in listed] == [created.json()["id"]]
    assert "secret" not in listed[0]
    assert Webhook.objects.get().secret == secret
    assert Project.objects.get(pk=project.pk).has_webhooks


@pytest.mark.django_db
def test_a_given_secret_in_the_standard_format_is_kept(make_project, manager, api_client_for):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()

    created = _register(api_client_for(manager), make_project(), secret=secret)

    assert created.status_code == 201
    assert Webhook.objects.get().secret == secret


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "'ftp://hooks.example.com/x'"),
        ({"url": "not a url"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({"url": "https://example.com:99999/"}, "port"),
        ({"events": ["judgement.created", "judgement.deleted"]}, "'judgement.deleted'"),
        ({"events": []}, "events"),
        ({"secret": "plain-password"}, "whsec_"),
        ({"secret": "whsec_" + base64.b64encode(b"short").decode()}, "5 bytes"),
        ({"secret": "whsec_not base64!"}, "not base64"),
    ],
)
def test_a_bad_url_event_or_secret_is_a_400_naming_it(
    make_project, manager, api_client_for, body, named
):
    response = _register(api_client_for(manager), make_project(), **body)

    assert response.status_code == 400
    assert named in json.dumps(response.json())
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_a_project_has_at_most_webhook_max_per_project_webhooks(
    settings, make_project, manager, api_client_for
):
    settings.WEBHOOK_MAX_PER_PROJECT = 2
    project, client = make_project(), api_client_for(manager)
    assert [_register(client, project).status_code for _ in range(2)] == [201, 201]

    third = _register(client, project)

    assert third.status_code == 409
    assert "WEBHOOK_MAX_PER_PROJECT" in third.json()["detail"]


@pytest.mark.django_db
def test_webhook_allowed_hosts_limits_where_webhooks_may_point(
    settings, make_project, manager, api_client_for
):
    settings.WEBHOOK_ALLOWED_HOSTS = [".example.com"]
    project, client = make_project(), api_client_for(manager)

    assert _register(client, project, url="https://hooks.example.com/x").status_code == 201
    refused = _register(client, project, url="http://169.254.169.254/latest/meta-data")
    assert refused.status_code == 400
    assert "'169.254.169.254'" in refused.json()["detail"]


@pytest.mark.django_db
def test_webhooks_are_for_staff_with_the_permission_and_hidden_from_outsiders(
    make_user, make_project, manager, api_client_for
):
    member, outsider, reviewer = make_user(), make_user(), make_user(role="reviewer")
    bare_staff = make_user(role="manager")
    bare_staff.groups.clear()  # staff status and no permission
    project = make_project(members=[member])
    make_project(members=[outsider])
    hook_id = _register(api_client_for(manager), project).json()["id"]
    paths = [
        ("post", f"/api/projects/{project.slug}/webhooks/"),
        ("get", f"/api/projects/{project.slug}/webhooks/"),
        ("delete", f"/api/projects/{project.slug}/webhooks/{hook_id}/"),
        ("get", f"/api/projects/{project.slug}/webhooks/{hook_id}/deliveries/"),
    ]
    callers = [(None, 401), (outsider, 404), (member, 403), (reviewer, 403), (bare_staff, 403)]
    for caller, expected in callers:
        client = api_client_for(caller)
        for method, path in paths:
            body = {"url": "https://x.example.com/", "events": ["round.finished"]}
            response = getattr(client, method)(path, body, format="json")
            assert response.status_code == expected, (caller, method, path, response.content)
            assert response.json()["detail"]
    assert Webhook.objects.count() == 1


@pytest.mark.django_db
def test_deleting_the_last_webhook_clears_has_webhooks(make_project, manager, api_client_for):
    project, other = make_project(), make_project()
    client = api_client_for(manager)
    first, second = (_register(client, project).json()["id"] for _ in range(2))
    elsewhere = _register(client, other).json()["id"]
    base = f"/api/projects/{project.slug}/webhooks"

    assert client.delete(f"{base}/{elsewhere}/").status_code == 404  # not this project's
    assert client.delete(f"{base}/{first}/").status_code == 204
    assert Project.objects.get(pk=project.pk).has_webhooks
    assert client.delete(f"{base}/{second}/").status_code == 204
    assert not Project.objects.get(pk=project.pk).has_webhooks
    assert client.delete(f"{base}/{second}/").status_code == 404
    assert client.get(f"{base}/{second}/deliveries/").status_code == 404


# --- signing ---------------------------------------------------------------------------------
def test_signatures_match_the_standard_webhooks_test_vector():
    headers = webhooks.signature_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=datetime.fromtimestamp(1614265330, tz=UTC),
        body='{"test": 2432232314}',
    )

    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


# --- emitting --------------------------------------------------------------------------------
def _judge_once(make_user, make_project, make_comparison, *, hook_events=None):
    annotator = make_user()
    project = make_project(members=[annotator])
    if hook_events is not None:
        webhooks.create_webhook(project=project, url="https://h.example.com/", events=hook_events)
    comparison = make_comparison(project)
    services.assign_next_comparison(annotator=annotator, project=project)
    return annotator, comparison


# What record_judgement cost before webhooks existed (measured then): a savepoint, the
# locked read (which now brings has_webhooks along), the insert, the savepoint's release.
JUDGEMENT_QUERIES = 4


@pytest.mark.django_db
def test_a_judgement_on_a_project_without_webhooks_costs_no_extra_query(
    make_user, make_project, make_comparison, django_assert_num_queries
):
    annotator, comparison = _judge_once(make_user, make_project, make_comparison)

    with django_assert_num_queries(JUDGEMENT_QUERIES):
        services.record_judgement(annotator=annotator, comparison=comparison.pk, choice="left")

    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_judgement_on_a_project_with_webhooks_writes_one_delivery_per_subscriber(
    make_user, make_project, make_comparison, django_assert_num_queries
):
    annotator, comparison = _judge_once(
        make_user, make_project, make_comparison, hook_events=["judgement.created"]
    )
    project = comparison.project
    webhooks.create_webhook(project=project, url="https://i.example.com/", events=EVENTS)
    webhooks.create_webhook(project=project, url="https://j.example.com/", events=EVENTS[2:])

    with django_assert_num_queries(JUDGEMENT_QUERIES + 2):  # the webhooks, the deliveries
        result = services.record_judgement(
            annotator=annotator, comparison=comparison.pk, choice="right"
        )

    deliveries = list(WebhookDelivery.objects.order_by("webhook_id"))
    assert [d.webhook.url for d in deliveries] == [
        "https://h.example.com/",
        "https://i.example.com/",
    ]
    assert deliveries[0].event_id == deliveries[1].event_id
    payload = deliveries[0].payload
    assert payload["type"] == "judgement.created"
    assert payload["data"] == {
        "project": project.slug,
        "judgement_id": result.judgement.pk,
        "comparison_id": comparison.pk,
        "annotator": annotator.username,
        "choice": "right",
        "ranking": result.judgement.ranking,
        "created_at": DjangoJSONEncoder().default(result.judgement.created_at),
    }


@pytest.mark.django_db
def test_an_inactive_webhook_is_sent_nothing(make_user, make_project, make_comparison):
    annotator, comparison = _judge_once(
        make_user, make_project, make_comparison, hook_events=["judgement.created"]
    )
    Webhook.objects.update(active=False)

    services.record_judgement(annotator=annotator, comparison=comparison.pk, choice="left")

    assert not WebhookDelivery.objects.exists()


def _round_with_steps(project) -> tuple[Run, dict]:
    round_run = Run.objects.create(project=project, kind=Run.Kind.ROUND, number=1)
    steps = {
        step.kind: Run.objects.create(project=project, kind=step.kind, round=round_run, number=1)
        for step in STEPS
    }
    return round_run, steps


@pytest.mark.django_db
def test_a_round_that_succeeds_or_fails_emits_round_finished(make_project):
    project = make_project()
    webhooks.create_webhook(project=project, url="https://h.example.com/", events=EVENTS)
    round_run, steps = _round_with_steps(project)
    policy_step = steps[Run.Kind.IMPROVE_POLICY]
    for step in STEPS:

        def work(run, progress, kind=step.kind):
            if kind == Run.Kind.IMPROVE_POLICY:
                Policy.objects.create(project=project, version=3, run=policy_step)
            return StepResult(metrics={f"{kind}/done": 1.0})

        training_services.execute_step(step_id=steps[step.kind].pk, work=work)

    (succeeded,) = WebhookDelivery.objects.all()
    assert succeeded.payload["type"] == "round.finished"
    data = succeeded.payload["data"]
    assert (data["run_id"], data["status"]) == (round_run.pk, "succeeded")
    assert data["policy_version"] == 3
    assert data["metrics"] == {f"{step.kind}/done": 1.0 for step in STEPS}

    failing_round, failing_steps = _round_with_steps(project)

    def boom(run, progress):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        training_services.execute_step(
            step_id=failing_steps[Run.Kind.FIT_REWARD_MODEL].pk, work=boom
        )

    failed = WebhookDelivery.objects.exclude(pk=succeeded.pk).get()
    assert failed.payload["data"]["run_id"] == failing_round.pk
    assert failed.payload["data"]["status"] == "failed"
    assert "out of memory" in failed.payload["data"]["error"]
    assert failed.payload["data"]["policy_version"] is None


# --- delivering, in this process ---------------------------------------------------------------
def _delivery(project, url: str) -> tuple[WebhookDelivery, Webhook]:
    hook = webhooks.create_webhook(project=project, url=url, events=["round.finished"])
    (delivery_id,) = webhooks.emit(
        project_id=project.pk, event="round.finished", payload={"run_id": 1}
    )
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id), hook


@pytest.mark.django_db
def test_an_attempt_posts_the_signed_body_and_a_repeat_of_a_succeeded_one_does_nothing(
    make_project, receiver
):
    server = receiver()
    delivery, hook = _delivery(make_project(), server.url)

    assert webhooks.attempt_delivery(delivery.pk) == webhooks.AttemptResult("succeeded")
    assert webhooks.attempt_delivery(delivery.pk) == webhooks.AttemptResult("not claimed")

    ((headers, body),) = server.requests
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == str(delivery.pk)
    assert signature_is_valid(hook.secret, headers, body)
    assert StandardWebhook(hook.secret).verify(body, headers) == delivery.payload
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.finished_at is not None


@pytest.mark.django_db
def test_failed_attempts_back_off_exponentially_and_the_last_one_fails_the_delivery(
    settings, make_project, receiver
):
    settings.WEBHOOK_MAX_ATTEMPTS, settings.WEBHOOK_RETRY_BASE_S = 3, 10
    server = receiver([500, 503, 502])
    delivery, _ = _delivery(make_project(), server.url)

    results = [webhooks.attempt_delivery(delivery.pk) for _ in range(4)]

    assert results == [
        webhooks.AttemptResult("pending", 10),
        webhooks.AttemptResult("pending", 20),
        webhooks.AttemptResult("failed"),
        webhooks.AttemptResult("not claimed"),
    ]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 502)
    assert delivery.last_error == "HTTP 502: ok"
    assert len(server.requests) == 3
    assert len({headers["webhook-id"] for headers, _ in server.requests}) == 1


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_an_unreachable_receiver_is_recorded(make_project, receiver):
    target = receiver()
    server = receiver([302], redirect_to=target.url)
    redirected, _ = _delivery(make_project(), server.url)

    assert webhooks.attempt_delivery(redirected.pk).status == "pending"
    redirected.refresh_from_db()
    assert redirected.last_status_code == 302 and not target.requests

    closed = receiver()
    closed.close()
    unreachable, _ = _delivery(make_project(), closed.url)
    assert webhooks.attempt_delivery(unreachable.pk).status == "pending"
    unreachable.refresh_from_db()
    assert unreachable.last_status_code is None
    assert "refused" in unreachable.last_error.lower()
    assert unreachable.next_attempt_at is not None


# --- delivering, on a worker -----------------------------------------------------------------
@pytest.fixture
def fast_worker(transactional_db, request, monkeypatch):
    """A worker process whose retries wait 0.2 s, 0.4 s, ... (its settings come from the
    environment it inherits, set before it starts). transactional_db is named here so that
    the test's data is committed, where the worker sees it."""
    monkeypatch.setenv("WEBHOOK_RETRY_BASE_S", "0.2")
    return request.getfixturevalue("celery_worker_process")


@pytest.mark.worker
def test_a_judgement_reaches_a_local_receiver_with_a_valid_signature(
    fast_worker, make_user, make_project, make_comparison, manager, api_client_for, receiver
):
    server = receiver()
    annotator = make_user()
    project = make_project(members=[annotator])
    comparison = make_comparison(project)
    created = _register(api_client_for(manager), project, url=server.url).json()
    client = api_client_for(annotator)
    assert client.post(f"/api/projects/{project.slug}/next/").status_code == 200

    judged = client.post(
        f"/api/comparisons/{comparison.pk}/judgement/", {"choice": "left"}, format="json"
    )

    assert judged.status_code == 201
    assert server.received.wait(timeout=30), "the receiver got nothing"
    ((headers, body),) = server.requests
    assert signature_is_valid(created["secret"], headers, body)
    sent = json.loads(body)
    assert sent["type"] == "judgement.created"
    assert sent["data"]["judgement_id"] == judged.json()["id"]
    assert sent["data"]["annotator"] == annotator.username
    delivery = _wait_for(int(headers["webhook-id"]), status="succeeded")
    assert delivery.attempts == 1
    listed = api_client_for(manager).get(
        f"/api/projects/{project.slug}/webhooks/{created['id']}/deliveries/"
    )
    assert [(d["id"], d["status"]) for d in listed.json()] == [(delivery.pk, "succeeded")]


@pytest.mark.worker
def test_a_failing_receiver_is_retried_until_it_answers(fast_worker, make_project, receiver):
    server = receiver([500, 500])  # then 200
    project = make_project()
    hook = webhooks.create_webhook(project=project, url=server.url, events=["arena.finished"])

    (delivery_id,) = webhooks.emit(
        project_id=project.pk, event="arena.finished", payload={"arena_id": 7}
    )

    delivery = _wait_for(delivery_id, status="succeeded")
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 200, "")
    assert len(server.requests) == 3
    assert all(signature_is_valid(hook.secret, h, b) for h, b in server.requests)
    assert len({h["webhook-id"] for h, _ in server.requests}) == 1  # receivers can dedupe


# --- the admin -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_admin_lists_webhooks_without_their_secret_and_deleting_keeps_has_webhooks(
    django_user_model, make_project
):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    project = make_project()
    delivery, hook = _delivery(project, "https://hooks.example.com/x")

    for name in ("webhook_changelist", "webhookdelivery_changelist"):
        page = client.get(reverse(f"admin:labeling_{name}"))
        assert page.status_code == 200 and hook.secret not in page.content.decode()
    change = client.get(reverse("admin:labeling_webhook_change", args=[hook.pk]))
    assert change.status_code == 200
    assert hook.secret not in change.content.decode()
    assert hook.secret[:10] + "…" in change.content.decode()
    shown = client.get(reverse("admin:labeling_webhookdelivery_change", args=[delivery.pk]))
    assert shown.status_code == 200 and "round.finished" in shown.content.decode()
    assert client.get(reverse("admin:labeling_webhook_add")).status_code == 403

    deleted = client.post(reverse("admin:labeling_webhook_delete", args=[hook.pk]), {"post": "yes"})

    assert deleted.status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert not Project.objects.get(pk=project.pk).has_webhooks


@pytest.mark.django_db
def test_pending_deliveries_whose_message_was_lost_are_sent_again(make_project, monkeypatch):
    """Beat's resend: never tried, overdue for a retry, or claimed by a worker that died."""
    sent = []
    monkeypatch.setattr(webhooks, "_send_tasks", lambda ids: sent.extend(ids))
    never_tried, overdue, died, done = (
        _delivery(make_project(), "https://hooks.example.com/x")[0] for _ in range(4)
    )
    sent.clear()  # emitting sent each one once
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=overdue.pk).update(
        attempts=2, next_attempt_at=now - timedelta(minutes=1)
    )
    WebhookDelivery.objects.filter(pk=died.pk).update(attempts=1, last_attempt_at=now)
    WebhookDelivery.objects.filter(pk=done.pk).update(status="succeeded", attempts=1)

    assert webhooks.resend_stale_deliveries(now=now) == 0  # all of them may just be waiting
    assert webhooks.resend_stale_deliveries(now=now + timedelta(minutes=10)) == 3
    assert sorted(sent) == sorted([never_tried.pk, overdue.pk, died.pk])
