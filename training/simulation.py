"""Synthetic annotators: scripted teachers that judge through the same service layer as
people do (assign_next_comparison, then record_judgement)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from django.contrib.auth import get_user_model

from labeling import selectors, services
from labeling.models import Item, Project
from training.kinds.registry import kind_for
from training.ml.teachers import SyntheticTeacher


def simulated_annotator(project: Project, teacher_name: str):
    """The account a teacher judges as (``sim-<teacher>``), a member of the project."""
    user, created = get_user_model().objects.get_or_create(username=f"sim-{teacher_name}")
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    services.add_member(project=project, user=user)
    return user


def teacher_answer(project: Project, items: list[Item], teacher: SyntheticTeacher, rng) -> dict:
    """The teacher's answer for items in the order shown: {choice} or {ranking}."""
    kind = kind_for(project)
    judgeables = [kind.judgeable(item) for item in items]
    if len(items) == 2:
        return {"choice": teacher.judge(judgeables[0], judgeables[1], rng)}
    order = teacher.rank(judgeables, rng)
    if order is None:
        return {"choice": "skip"}
    return {"ranking": [items[i].pk for i in order]}


def simulate_judgements(
    *,
    project: Project,
    teacher_name: str,
    teacher: SyntheticTeacher,
    limit: int | None,
    seed: int,
    on_judgement: Callable[[], None] | None = None,
) -> int:
    """Judge up to ``limit`` comparisons (None: all that are left for this teacher's
    account) and return how many were judged."""
    user = simulated_annotator(project, teacher_name)
    rng = np.random.default_rng(seed)
    done = 0
    while limit is None or done < limit:
        lease = services.assign_next_comparison(annotator=user, project=project)
        if lease is None:
            break
        items = selectors.assignment_items(lease)
        answer = teacher_answer(project, items, teacher, rng)
        services.record_judgement(annotator=user, comparison=lease.comparison, **answer)
        done += 1
        if on_judgement:
            on_judgement()
    return done


def simulate_panel(
    *,
    project: Project,
    panel: Sequence[tuple[str, SyntheticTeacher]],
    limit: int | None,
    seed: int,
) -> dict[str, int]:
    """Several simulated annotators judge in turn, one comparison each per turn, through
    the same services (so a project's ``overlap`` decides how many of them judge each
    comparison), until ``limit`` judgements in all (None: until none of them has anything
    left). Each teacher draws from its own stream of ``seed``. Returns the judgements made
    per teacher name."""
    users = [simulated_annotator(project, name) for name, _ in panel]
    rngs = [np.random.default_rng([seed, n]) for n in range(len(panel))]
    done = dict.fromkeys((name for name, _ in panel), 0)
    active = list(range(len(panel)))
    while active and (limit is None or sum(done.values()) < limit):
        for n in list(active):
            if limit is not None and sum(done.values()) >= limit:
                break
            lease = services.assign_next_comparison(annotator=users[n], project=project)
            if lease is None:
                active.remove(n)
                continue
            items = selectors.assignment_items(lease)
            answer = teacher_answer(project, items, panel[n][1], rngs[n])
            services.record_judgement(annotator=users[n], comparison=lease.comparison, **answer)
            done[panel[n][0]] += 1
    return done
