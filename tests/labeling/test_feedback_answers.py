"""The judgement API's feedback beside the choice (strength, ratings, critique, edit,
both_bad), checked against the project's form: stored as given, each bad, missing or
unasked-for part a 400 whose ``field`` names it, repeats and revisions as for the choice."""

from __future__ import annotations

import pytest
import yaml

from labeling.models import Comparison, Item, Judgement, JudgementRevision

EVERY_PART = {
    "strength": "optional",
    "ratings": "optional",
    "critique": "optional",
    "edit": "optional",
    "both_bad": True,
}


@pytest.fixture
def leased(make_user, make_project, make_comparison, api_client_for):
    """(client, the next answer) of an annotator holding a lease in a fresh project whose
    feedback form is ``form``."""

    def make(form=None, *, k=2, criteria=None, texts=None):
        user = make_user()
        config = {"feedback": EVERY_PART if form is None else form}
        if criteria is not None:
            config["criteria"] = criteria
        project = make_project(members=[user], config=config)
        make_comparison(project, k=k, texts=texts)
        client = api_client_for(user)
        shown = client.post(f"/api/projects/{project.slug}/next/").json()
        return client, shown

    return make


def _judge(client, shown, method="post", **answer):
    url = f"/api/comparisons/{shown['id']}/judgement/"
    return getattr(client, method)(url, answer, format="json")


def _ids(shown) -> list[int]:
    return [item["id"] for item in shown["items"]]


def _rated(shown, value=4, criteria=("overall",)) -> dict:
    return {str(pk): {c: value for c in criteria} for pk in _ids(shown)}


def _assert_400_naming(response, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field, body
    assert body["detail"].startswith(f"{field}: ")


# --- what is stored -------------------------------------------------------------------------
def test_next_carries_the_projects_form_and_criteria(leased):
    _, shown = leased(criteria=["helpful", {"name": "honest", "weight": 2.0}])
    assert shown["feedback"] == EVERY_PART
    assert shown["criteria"] == ["helpful", "honest"]
    assert isinstance(shown["prompt"], str) and "messages" not in shown["items"][0]


def test_a_project_without_a_form_shows_an_empty_one_and_the_default_criterion(leased):
    _, shown = leased({})
    assert (shown["feedback"], shown["criteria"]) == ({}, ["overall"])


def test_every_part_is_stored_and_answered(leased):
    client, shown = leased(texts=["roses are red", "violets"])
    left, right = _ids(shown)
    ratings = {str(left): {"overall": 6}, str(right): {"overall": 2}}

    response = _judge(
        client,
        shown,
        choice="left",
        strength="strong",
        ratings=ratings,
        critique="The right one rhymes with nothing.",
        edit="roses are red, and so on",
    )

    assert response.status_code == 201, response.content
    judgement = Judgement.objects.get()
    assert (judgement.strength, judgement.ratings) == ("strong", ratings)
    assert judgement.critique == "The right one rhymes with nothing."
    edit = judgement.edit
    assert edit.text == "roses are red, and so on" and edit.project_id == judgement.project_id
    assert edit.prompt == Item.objects.get(pk=left).prompt and edit.messages is None
    assert edit.data == {"source": "edit", "edit_of": judgement.ranking[0]}
    assert not edit.comparisons.exists()
    body = response.json()
    assert body["strength"] == "strong" and body["ratings"] == ratings
    assert body["critique"] == judgement.critique
    assert body["edit"] == {"id": edit.pk, "text": "roses are red, and so on"}


def test_an_answer_without_feedback_answers_with_the_empty_parts(leased):
    client, shown = leased()
    body = _judge(client, shown, choice="tie").json()
    assert (body["strength"], body["ratings"], body["critique"], body["edit"]) == (
        "",
        None,
        "",
        None,
    )


def test_ratings_of_a_ranking_cover_every_item_and_the_edit_improves_the_first(leased):
    client, shown = leased(k=3, criteria=["helpful", "honest"])
    ranking = list(reversed(_ids(shown)))
    ratings = _rated(shown, 5, ("helpful", "honest"))

    response = _judge(client, shown, ranking=ranking, ratings=ratings, edit="better")

    assert response.status_code == 201, response.content
    judgement = Judgement.objects.get()
    assert judgement.ratings == ratings
    assert judgement.edit.data["edit_of"] == ranking[0]


def test_both_bad_counts_towards_overlap_and_ranks_nothing(leased):
    client, shown = leased()
    response = _judge(client, shown, choice="both_bad", ratings=_rated(shown, 1), critique="meh")
    assert response.status_code == 201, response.content
    judgement = Judgement.objects.get()
    assert (judgement.choice, judgement.ranking) == ("both_bad", None)
    comparison = Comparison.objects.get(pk=shown["id"])
    assert (comparison.judgement_count, comparison.status) == (1, "complete")


def test_a_skip_may_carry_a_critique(leased):
    client, shown = leased()
    response = _judge(client, shown, choice="skip", critique="I cannot read this language.")
    assert response.status_code == 201, response.content
    assert Judgement.objects.get().critique == "I cannot read this language."


def test_null_and_empty_parts_mean_not_given(leased):
    client, shown = leased({"strength": "optional", "critique": "optional"})
    response = _judge(client, shown, choice="left", strength="", critique=None, ratings=None)
    assert response.status_code == 201, response.content
    assert (Judgement.objects.get().strength, Judgement.objects.get().critique) == ("", "")


# --- bad values -----------------------------------------------------------------------------
def _rate(first, second=None, **more):
    """Ratings of the shown items, made once their ids (a, b) are known: ``first`` for a,
    ``second`` for b (None: b unrated), and ``more`` keys as they are."""

    def make(a: int, b: int) -> dict:
        given = {str(a): first, **more}
        if second is not None:
            given[str(b)] = second
        return given

    return make


ONE = {"overall": 1}
BAD_ANSWERS = [  # (id, choice, the other parts, the field the 400 names)
    ("rating-of-8", "left", {"ratings": _rate({"overall": 8}, ONE)}, "ratings.{a}.overall"),
    ("rating-of-0", "left", {"ratings": _rate(ONE, {"overall": 0})}, "ratings.{b}.overall"),
    ("rating-as-text", "left", {"ratings": _rate({"overall": "5"}, ONE)}, "ratings.{a}.overall"),
    ("rating-of-4.5", "left", {"ratings": _rate({"overall": 4.5}, ONE)}, "ratings.{a}.overall"),
    ("an-item-unrated", "left", {"ratings": _rate(ONE)}, "ratings.{b}"),
    ("a-criterion-missing", "left", {"ratings": _rate({}, ONE)}, "ratings.{a}.overall"),
    ("unknown-criterion", "left", {"ratings": _rate({**ONE, "wit": 2}, ONE)}, "ratings.{a}.wit"),
    ("item-not-compared", "left", {"ratings": _rate(ONE, ONE, **{"9999": ONE})}, "ratings.9999"),
    ("ratings-not-an-object", "left", {"ratings": [5, 3]}, "ratings"),
    ("ratings-on-a-skip", "skip", {"ratings": _rate(ONE, ONE)}, "ratings"),
    ("critique-of-5000-characters", "left", {"critique": "x" * 5000}, "critique"),
    ("critique-not-text", "left", {"critique": ["x"]}, "critique"),
    ("critique-with-a-nul", "left", {"critique": "a\x00b"}, "critique"),
    ("unknown-strength", "left", {"strength": "huge"}, "strength"),
    ("strength-on-a-tie", "tie", {"strength": "clear"}, "strength"),
    ("strength-on-both-bad", "both_bad", {"strength": "slight"}, "strength"),
    ("edit-of-a-tie", "tie", {"edit": "better"}, "edit"),
    ("edit-of-a-skip", "skip", {"edit": "better"}, "edit"),
    ("edit-of-both-bad", "both_bad", {"edit": "better"}, "edit"),
    ("edit-of-blanks", "left", {"edit": "   "}, "edit"),
    ("edit-not-text", "left", {"edit": {"text": "x"}}, "edit"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "parts", "field"),
    [pytest.param(*case, id=name) for name, *case in BAD_ANSWERS],
)
def test_a_bad_value_is_400_naming_the_field_and_stores_nothing(leased, choice, parts, field):
    client, shown = leased()
    a, b = _ids(shown)
    answer = {key: value(a, b) if callable(value) else value for key, value in parts.items()}
    items = Item.objects.count()

    response = _judge(client, shown, choice=choice, **answer)

    _assert_400_naming(response, field.format(a=a, b=b))
    assert not Judgement.objects.exists() and Item.objects.count() == items


def test_an_edit_that_changes_nothing_is_400(leased):
    client, shown = leased()
    response = _judge(client, shown, choice="left", edit=shown["items"][0]["text"])
    _assert_400_naming(response, "edit")
    assert not Item.objects.filter(data__source="edit").exists()


def test_a_critique_of_exactly_the_limit_is_taken(leased):
    client, shown = leased()
    response = _judge(client, shown, choice="left", critique="x" * 4000)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"choice": "left", "strength": "clear"}, "strength"),
        ({"choice": "left", "ratings": {"1": {"overall": 3}}}, "ratings"),
        ({"choice": "skip", "critique": "hm"}, "critique"),
        ({"choice": "right", "edit": "better"}, "edit"),
        ({"choice": "both_bad"}, "choice"),
    ],
    ids=["strength", "ratings", "critique", "edit", "both_bad"],
)
def test_a_part_the_form_does_not_ask_for_is_400_naming_it(leased, answer, field):
    client, shown = leased({})
    _assert_400_naming(_judge(client, shown, **answer), field)
    assert not Judgement.objects.exists()


@pytest.mark.parametrize("part", ["strength", "ratings", "critique", "edit"])
def test_a_required_part_missing_is_400_naming_it(leased, part):
    client, shown = leased({part: "required"})
    _assert_400_naming(_judge(client, shown, choice="left"), part)
    assert not Judgement.objects.exists()


def test_required_parts_apply_only_to_the_answers_they_go_with(leased):
    form = {"strength": "required", "edit": "required", "ratings": "required", "both_bad": True}
    client, shown = leased(form)
    # a tie has no winner to strengthen or edit, but it rates the items
    _assert_400_naming(_judge(client, shown, choice="tie"), "ratings")
    response = _judge(client, shown, choice="tie", ratings=_rated(shown))
    assert response.status_code == 201, response.content


def test_a_skip_needs_no_required_part(leased):
    client, shown = leased({part: "required" for part in ("strength", "ratings", "critique")})
    assert _judge(client, shown, choice="skip").status_code == 201


# --- repeats and revisions ------------------------------------------------------------------
def test_an_identical_repeat_returns_the_stored_judgement_and_makes_no_second_edit(leased):
    client, shown = leased()
    answer = {"choice": "right", "strength": "slight", "ratings": _rated(shown), "edit": "new"}
    first = _judge(client, shown, **answer)
    again = _judge(client, shown, **answer)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Item.objects.filter(data__source="edit").count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"strength": "strong"},
        {"critique": "on second thought"},
        {"edit": "newer"},
        {"ratings": None},
    ],
    ids=["strength", "critique", "edit", "ratings"],
)
def test_a_repeat_with_other_feedback_is_a_conflict(leased, change):
    client, shown = leased()
    answer = {"choice": "right", "strength": "slight", "ratings": _rated(shown), "edit": "new"}
    assert _judge(client, shown, **answer).status_code == 201
    assert _judge(client, shown, **{**answer, **change}).status_code == 409
    assert Judgement.objects.get().strength == "slight"


def test_a_revision_replaces_the_feedback_and_keeps_the_old_in_its_history(leased):
    client, shown = leased()
    first = {
        "choice": "left",
        "strength": "clear",
        "ratings": _rated(shown, 3),
        "critique": "fine",
        "edit": "first edit",
    }
    old_edit = _judge(client, shown, **first).json()["edit"]["id"]

    response = _judge(client, shown, "put", choice="right", critique="no, the right one")

    assert response.status_code == 200, response.content
    judgement = Judgement.objects.get()
    assert (judgement.choice, judgement.strength, judgement.ratings) == ("right", "", None)
    assert (judgement.critique, judgement.edit) == ("no, the right one", None)
    revision = JudgementRevision.objects.get()
    assert revision.choice == "left"
    assert revision.feedback == {
        "strength": "clear",
        "ratings": first["ratings"],
        "critique": "fine",
        "edit": old_edit,
    }
    assert Item.objects.get(pk=old_edit).text == "first edit"  # history keeps its edit


def test_a_revised_edit_is_a_new_item_and_an_unchanged_one_keeps_its_item(leased):
    client, shown = leased()
    first = _judge(client, shown, choice="left", edit="one").json()["edit"]["id"]
    kept = _judge(client, shown, "put", choice="left", edit="one", critique="x").json()["edit"]
    assert kept["id"] == first
    changed = _judge(client, shown, "put", choice="left", edit="two").json()["edit"]
    assert changed["id"] != first and Item.objects.get(pk=changed["id"]).text == "two"
    assert JudgementRevision.objects.count() == 2


def test_a_revision_checks_the_feedback_as_judging_does(leased):
    client, shown = leased()
    _judge(client, shown, choice="left")
    _assert_400_naming(_judge(client, shown, "put", choice="left", critique="y" * 4001), "critique")
    _assert_400_naming(_judge(client, shown, "put", choice="tie", strength="clear"), "strength")
    assert not JudgementRevision.objects.exists()


def test_an_identical_revision_changes_nothing(leased):
    client, shown = leased()
    answer = {"choice": "left", "strength": "clear", "critique": "ok"}
    _judge(client, shown, **answer)
    assert _judge(client, shown, "put", **answer).status_code == 200
    assert not JudgementRevision.objects.exists()


# --- the schema -----------------------------------------------------------------------------
def test_the_openapi_schema_documents_the_feedback_fields(api_client_for, make_user):
    schema = yaml.safe_load(api_client_for(make_user(staff=True)).get("/api/schema/").content)
    components = schema["components"]["schemas"]
    request = components["JudgementRequestRequest"]["properties"]
    assert set(request) >= {"strength", "ratings", "critique", "edit"}
    assert "both_bad" in str(components)
    assert request["ratings"]["additionalProperties"]["additionalProperties"]["maximum"] == 7
    answer = components["JudgementWithNext"]["properties"]
    assert set(answer) >= {"strength", "ratings", "critique", "edit"}
    assert set(components["Assignment"]["properties"]) >= {"feedback", "criteria"}


def test_the_judgement_admin_page_shows_the_feedback(leased, admin_client):
    client, shown = leased()
    _judge(client, shown, choice="left", strength="clear", critique="tight", edit="roses!")
    judgement = Judgement.objects.get()

    page = admin_client.get(f"/admin/labeling/judgement/{judgement.pk}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "Clearly better" in text and "tight" in text
    assert f"/admin/labeling/item/{judgement.edit_id}/change/" in text
