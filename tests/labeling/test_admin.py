"""The Django admin of the labeling app: every page loads, search and filters work, and
the export action hands back the judgements as a zip of JSONL files."""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from labeling import services
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    ImportJob,
    Item,
    Judgement,
    Membership,
    Project,
    Webhook,
    WebhookDelivery,
)

LABELING_MODELS = [Project, Membership, Item, Comparison, Assignment, Judgement]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    return client


@pytest.fixture
def judged(make_user, make_project, make_comparison):
    """A project with one judged pair, one open ranking task and one gold pair; and an
    empty second project, so that the admin shows its project filters."""
    annotator = make_user("annie")
    project = make_project("poems", members=[annotator])
    make_project("zebra")
    comparison = make_comparison(project, prompt="Write a poem", texts=["roses", "violets"])
    make_comparison(project, k=3, prompt="Rank these")
    make_comparison(project, texts=["gold a", "gold b"], gold="tie")
    lease = services.assign_next_comparison(
        annotator=annotator, project=project, rng=random.Random(0)
    )
    assert lease.comparison_id == comparison.pk
    result = services.record_judgement(
        annotator=annotator, comparison=comparison, choice="left", time_spent_ms=1234
    )
    return {"project": project, "judgement": result.judgement, "lease": lease}


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_labeling_model_is_registered():
    registered = {model for model in admin.site._registry if model._meta.app_label == "labeling"}

    assert registered == {*LABELING_MODELS, ImportJob, Webhook, WebhookDelivery}
    assert ComparisonItem not in registered  # edited inline, on its comparison


def test_import_jobs_are_listed_and_shown_but_never_added_or_edited(
    admin_client, make_user, make_project
):
    job = ImportJob.objects.create(
        project=make_project(), importer=make_user(staff=True), status="succeeded", progress=1
    )
    listed = admin_client.get(_url(ImportJob, "changelist"))
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    assert admin_client.get(_url(ImportJob, "change", job.pk)).status_code == 200
    assert admin_client.get(_url(ImportJob, "add")).status_code == 403
    response = admin_client.post(_url(ImportJob, "change", job.pk), {"status": "failed"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "succeeded"


@pytest.mark.parametrize("model", LABELING_MODELS, ids=lambda m: m.__name__)
def test_changelist_loads(admin_client, judged, model):
    response = admin_client.get(_url(model, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count() > 0
    assert response.context["cl"].result_count == len(response.context["cl"].result_list)


@pytest.mark.parametrize("model", LABELING_MODELS, ids=lambda m: m.__name__)
def test_change_page_loads_for_every_row(admin_client, judged, model):
    for pk in model.objects.values_list("pk", flat=True):
        response = admin_client.get(_url(model, "change", pk))

        assert response.status_code == 200, (model.__name__, pk)


@pytest.mark.parametrize("model", LABELING_MODELS, ids=lambda m: m.__name__)
def test_add_page_loads(admin_client, model):
    assert admin_client.get(_url(model, "add")).status_code == 200


@pytest.mark.parametrize(
    ("model", "term", "expected"),
    [
        (Project, "poems", 1),
        (Project, "no-such-thing", 0),
        (Membership, "annie", 1),
        (Item, "violets", 1),
        (Item, "Rank these", 3),
        (Comparison, "roses", 1),
        (Comparison, "Rank these", 1),  # three matching items, one comparison
        (Assignment, "annie", 1),
        (Judgement, "annie", 1),
        (Judgement, "nobody", 0),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_search_finds_the_matching_rows(admin_client, judged, model, term, expected):
    response = admin_client.get(_url(model, "changelist"), {"q": term})

    assert response.status_code == 200
    assert response.context["cl"].result_count == expected


def test_judgement_search_by_comparison_id_finds_it(admin_client, judged):
    response = admin_client.get(
        _url(Judgement, "changelist"), {"q": str(judged["judgement"].comparison_id)}
    )

    assert response.status_code == 200
    assert judged["judgement"] in response.context["cl"].result_list


@pytest.mark.parametrize("model", LABELING_MODELS, ids=lambda m: m.__name__)
def test_every_list_filter_choice_loads(admin_client, judged, model):
    changelist = admin_client.get(_url(model, "changelist")).context["cl"]
    links = [
        choice["query_string"]
        for spec in changelist.filter_specs
        for choice in spec.choices(changelist)
    ]
    assert len(changelist.filter_specs) == len(admin.site._registry[model].list_filter)
    assert links

    for query_string in links:
        response = admin_client.get(_url(model, "changelist") + query_string)

        assert response.status_code == 200, query_string


def test_list_filters_narrow_the_rows(admin_client, judged):
    project = judged["project"]
    checks = [
        (Project, {"kind": "text"}, 2),
        (Project, {"kind": "trajectory"}, 0),
        (Comparison, {"status": "complete"}, 1),
        (Comparison, {"status": "open"}, 2),
        (Comparison, {"project__id__exact": project.pk}, 3),
        (Assignment, {"status": "done"}, 1),
        (Judgement, {"choice": "left", "source": "annotator"}, 1),
        (Judgement, {"choice": "tie"}, 0),
        (Item, {"project__id__exact": project.pk}, 7),
    ]
    for model, params, expected in checks:
        response = admin_client.get(_url(model, "changelist"), params)

        assert response.status_code == 200, (model.__name__, params)
        assert response.context["cl"].result_count == expected, (model.__name__, params)


def test_judgement_date_hierarchy_loads(admin_client, judged):
    created = judged["judgement"].created_at

    response = admin_client.get(
        _url(Judgement, "changelist"),
        {"created_at__year": created.year, "created_at__month": created.month},
    )

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_project_changelist_counts_comparisons_and_judgements(admin_client, judged):
    response = admin_client.get(_url(Project, "changelist"))

    row = response.context["cl"].result_list[0]
    assert (row._comparisons, row._judgements) == (3, 1)


def test_project_changelist_counts_by_subqueries_not_a_join_of_both_tables(
    admin_client, judged, make_project
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_project("empty")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(_url(Project, "changelist"))
    rows = {p.slug: (p._comparisons, p._judgements) for p in response.context["cl"].result_list}
    assert rows["empty"] == (0, 0)
    listing = [q["sql"] for q in queries if 'FROM "labeling_project"' in q["sql"]]
    assert listing and not any("JOIN" in sql and "labeling_judgement" in sql for sql in listing)


def test_unknown_filter_value_shows_no_rows(admin_client, judged):
    response = admin_client.get(_url(Comparison, "changelist"), {"status": "bogus"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


def test_unknown_filter_field_sends_back_to_the_list_with_an_error_flag(admin_client, judged):
    response = admin_client.get(_url(Comparison, "changelist"), {"no_such_field": "1"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- the export action -------------------------------------------------------------------------
def _export(admin_client, *projects) -> zipfile.ZipFile:
    response = admin_client.post(
        _url(Project, "changelist"),
        {"action": "export_projects", "_selected_action": [p.pk for p in projects]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="judgements.zip"'
    return zipfile.ZipFile(io.BytesIO(response.content))


def _lines(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines()]


def test_export_action_zips_trl_and_full_jsonl_of_the_project(admin_client, judged):
    archive = _export(admin_client, judged["project"])

    assert sorted(archive.namelist()) == ["poems-full.jsonl", "poems-trl.jsonl"]


def test_export_action_trl_file_holds_the_chosen_and_rejected_pair(admin_client, judged):
    judgement, lease = judged["judgement"], judged["lease"]
    texts = dict(Item.objects.values_list("pk", "text"))
    left, right = lease.display_order

    trl = _lines(_export(admin_client, judged["project"]), "poems-trl.jsonl")

    assert judgement.ranking == [left, right]  # "left" is the first item as shown
    assert trl == [{"prompt": "Write a poem", "chosen": texts[left], "rejected": texts[right]}]


def test_export_action_full_file_holds_one_line_per_judgement(admin_client, judged):
    judgement, lease = judged["judgement"], judged["lease"]
    texts = dict(Item.objects.values_list("pk", "text"))

    full = _lines(_export(admin_client, judged["project"]), "poems-full.jsonl")

    assert full == [
        {
            "judgement_id": judgement.pk,
            "comparison_id": judgement.comparison_id,
            "annotator": "annie",
            "source": "annotator",
            "choice": "left",
            "ranking": lease.display_order,
            "shown_order": lease.display_order,
            "items": [
                {
                    "id": pk,
                    "prompt": "Write a poem",
                    "text": texts[pk],
                    "prompt_messages": None,
                    "messages": None,
                    "ratings": None,
                }
                for pk in lease.display_order
            ],
            "strength": "",
            "critique": "",
            "edit": None,
            "time_spent_ms": 1234,
            "gold": None,
            "created_at": judgement.created_at.isoformat(),
            "revised_at": None,
        }
    ]


def test_export_action_gives_each_selected_project_its_own_files(
    admin_client, judged, make_project
):
    empty = make_project("empty")

    archive = _export(admin_client, judged["project"], empty)

    assert sorted(archive.namelist()) == [
        "empty-full.jsonl",
        "empty-trl.jsonl",
        "poems-full.jsonl",
        "poems-trl.jsonl",
    ]
    assert archive.read("empty-trl.jsonl") == archive.read("empty-full.jsonl") == b""
    assert len(_lines(archive, "poems-trl.jsonl")) == 1


def test_export_action_needs_a_selection(admin_client, judged):
    response = admin_client.post(
        _url(Project, "changelist"), {"action": "export_projects"}, follow=True
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")  # back to the list, with a message


def test_admin_refuses_a_non_staff_annotator(judged):
    client = Client()
    client.force_login(judged["judgement"].annotator)

    response = client.get(_url(Project, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    ("role", "offered"),
    [
        ("manager", {"export_projects", "start_round"}),  # deleting is for admins
        ("reviewer", {"export_projects"}),
    ],
)
def test_the_project_list_offers_only_the_actions_the_role_permits(
    judged, make_user, role, offered
):
    client = Client()
    client.force_login(make_user(role=role))

    response = client.get(_url(Project, "changelist"))

    assert response.status_code == 200
    choices = response.context["action_form"].fields["action"].choices
    assert {value for value, _ in choices} - {""} == offered
    refused = client.post(
        _url(Project, "changelist"),
        {"action": "start_round", "_selected_action": [judged["project"].pk]},
    )
    if "start_round" not in offered:  # the action is not run, whatever the POST says
        assert refused.status_code == 302  # back to the list, saying no action was chosen
        assert not judged["project"].runs.exists()


# --- what a row says, and where a project's pages are ------------------------------------------
def test_judgement_list_shows_the_winners_text_over_the_losers(admin_client, judged):
    judgement = judged["judgement"]
    winner, loser = (Item.objects.get(pk=pk).text for pk in judgement.ranking)

    response = admin_client.get(_url(Judgement, "changelist"))

    assert response.context["cl"].list_display[1:] == [
        "summary",
        "choice",
        "annotator",
        "project",
        "when",
    ]
    assert f"“{winner}” over “{loser}”" in response.content.decode()
    assert f"comparison {judgement.comparison_id}<" not in response.content.decode()


def test_judgement_summaries_name_the_items_of_every_kind_of_answer(
    judged, make_user, make_comparison
):
    from labeling.summaries import judgement_summary, shorten

    project, annotator = judged["project"], make_user()
    services.add_member(project=project, user=annotator)

    def judge(comparison, **answer) -> str:
        services.assign_next_comparison(annotator=annotator, project=project)
        judgement = services.record_judgement(
            annotator=annotator, comparison=comparison, **answer
        ).judgement
        return judgement_summary(judgement, {i.pk: i for i in comparison.items.all()})

    ranking = Comparison.objects.get(project=project, slots__position=2)
    order = list(ranking.items.order_by("-pk").values_list("pk", flat=True))
    texts = dict(Item.objects.values_list("pk", "text"))
    assert judge(ranking, ranking=order) == " > ".join(f"“{texts[pk]}”" for pk in order)
    assert shorten("a  b\n" + "c" * 50, 10) == "a b ccccc…"  # 10 characters, on one line

    tie = Comparison.objects.get(project=project, gold_ranking="tie")
    assert judge(tie, choice="tie") in ("“gold a” ties “gold b”", "“gold b” ties “gold a”")

    clips = [Item.objects.create(project=project) for _ in range(2)]  # no text: a clip's id
    pair = services.create_comparison(project=project, items=clips)
    first, second = (c.pk for c in clips)
    assert judge(pair, choice="skip") in (
        f"skipped item {first} vs item {second}",
        f"skipped item {second} vs item {first}",
    )


def test_project_list_and_form_link_to_the_label_page_and_the_dashboard(admin_client, judged):
    project = judged["project"]
    links = [f'href="/label/{project.slug}/"', f'href="/projects/{project.slug}/dashboard/"']

    listing = admin_client.get(_url(Project, "changelist")).content.decode()
    form = admin_client.get(_url(Project, "change", project.pk)).content.decode()

    assert all(link in listing for link in links)
    assert all(link in form for link in links)
    assert ">Label<" in form and ">Dashboard<" in form
    assert admin_client.get(f"/projects/{project.slug}/dashboard/").status_code == 200
