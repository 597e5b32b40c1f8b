"""Concurrent annotators on real PostgreSQL: no comparison is handed out beyond overlap."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from labeling import services
from labeling.models import Assignment, Judgement

N_ANNOTATORS = 20


def _in_threads(fn, args_list):
    barrier = threading.Barrier(len(args_list))
    errors = []

    def run(args):
        try:
            barrier.wait()
            fn(*args)
        except Exception as exc:  # surfaced below, with the thread's traceback lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a,)) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_twenty_annotators_asking_at_once_never_exceed_overlap(
    make_user, make_project, make_comparison
):
    users = [make_user() for _ in range(N_ANNOTATORS)]
    project = make_project(members=users, overlap=2)
    comparisons = [make_comparison(project) for _ in range(15)]

    def work(user):
        # each annotator asks, judges and asks again until nothing is left for them
        while True:
            lease = services.assign_next_comparison(annotator=user, project=project)
            if lease is None:
                return
            services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")

    _in_threads(work, [(u,) for u in users])

    per_comparison = Counter(Judgement.objects.values_list("comparison_id", flat=True))
    assert per_comparison == {c.pk: 2 for c in comparisons}  # every one judged, none beyond 2
    pairs = Judgement.objects.values_list("annotator_id", "comparison_id")
    assert len(set(pairs)) == len(pairs)
    assert not Assignment.objects.filter(status="open").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_hold_distinct_leases_within_overlap(
    make_user, make_project, make_comparison
):
    users = [make_user() for _ in range(N_ANNOTATORS)]
    project = make_project(members=users, overlap=3)
    comparisons = [make_comparison(project) for _ in range(5)]
    _in_threads(
        lambda u: services.assign_next_comparison(annotator=u, project=project),
        [(u,) for u in users],
    )
    leased = Counter(
        Assignment.objects.filter(status="open").values_list("comparison_id", flat=True)
    )
    # 5 comparisons x overlap 3 = 15 slots for 20 annotators: all filled, none overfilled
    assert leased == {c.pk: 3 for c in comparisons}


@pytest.mark.django_db(transaction=True)
def test_the_same_submission_sent_concurrently_stores_one_row(
    make_user, make_project, make_comparison
):
    user = make_user()
    project = make_project(members=[user])
    make_comparison(project)
    lease = services.assign_next_comparison(annotator=user, project=project)
    results = []
    _in_threads(
        lambda: results.append(
            services.record_judgement(annotator=user, comparison=lease.comparison, choice="left")
        ),
        [() for _ in range(8)],
    )
    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert Judgement.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_annotator_asking_concurrently_gets_one_lease(
    make_user, make_project, make_comparison
):
    user = make_user()
    project = make_project(members=[user])
    for _ in range(5):
        make_comparison(project)
    got = []
    _in_threads(
        lambda: got.append(services.assign_next_comparison(annotator=user, project=project).pk),
        [() for _ in range(6)],
    )
    assert len(set(got)) == 1
    assert Assignment.objects.filter(annotator=user).count() == 1
