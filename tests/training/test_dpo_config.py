"""A text project's ``dpo`` object: DPO's epochs, learning rate and batch size, validated
(a 400 naming ``dpo.<key>``) and used by the round's DPO step."""

import pytest
from django.db.models import Max

from labeling import services
from labeling.imports import import_lines
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from training.models import Run
from training.runner import run_step_here


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dpo", "key"),
    [
        ({"epochs": 0}, "dpo.epochs"),
        ({"lr": 0}, "dpo.lr"),
        ({"batch_size": 0}, "dpo.batch_size"),
        ({"beta": 0.1}, "dpo.beta"),  # β is the project's own beta
        (3, "dpo"),
    ],
)
def test_a_bad_dpo_setting_is_a_400_naming_the_key(make_user, api_client_for, dpo, key):
    response = api_client_for(make_user(staff=True)).post(
        "/api/projects/",
        {"slug": "d", "name": "D", "kind": "text", "config": {"dpo": dpo}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert key in response.json()["config"], response.json()


def _improve(project):
    number = (Run.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    step = run_step_here(
        Run.objects.create(project=project, kind="improve_policy", number=number, trigger="test")
    )
    assert step.status == "succeeded", step.error
    return step.metrics


@pytest.mark.django_db
def test_the_dpo_step_trains_with_the_projects_epochs_and_learning_rate(
    tmp_path_factory, make_user
):
    importer = make_user(staff=True)
    lines = [
        {"prompt": prompt, "chosen": "I think it is lovely.", "rejected": "I think it is awful."}
        for prompt in demo_prompts(8)
    ]
    margins = {}
    for name, dpo in (("gentle", {"epochs": 1, "lr": 1e-6}), ("strong", {"epochs": 3, "lr": 3e-3})):
        project = services.create_project(
            slug=name,
            name=name,
            kind="text",
            config={"model_dir": str(tiny_lm_dir(tmp_path_factory)), "dpo": dpo, "seed": 0},
        )
        import_lines(project=project, lines=list(enumerate(lines, 1)), importer=importer)
        margins[name] = _improve(project)["rewards/margins"]
    assert abs(margins["gentle"]) < 0.05 < margins["strong"]
