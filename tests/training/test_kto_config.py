"""A text project's ``algorithm: "kto"`` and its ``kto`` overrides: bad values are a 400
naming ``kto.<key>``, and a project without overrides trains with the documented defaults."""

import pytest

from labeling.config import project_config
from labeling.preferences import DESIRABLE_AT, UNDESIRABLE_AT


def _post(client, config):
    return client.post(
        "/api/projects/",
        {"slug": "thumbs", "name": "Thumbs", "kind": "text", "config": config},
        format="json",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"kto": {"desirable_weight": 0}}, "kto.desirable_weight"),
        ({"kto": {"undesirable_weight": -1.0}}, "kto.undesirable_weight"),
        ({"kto": {"desirable_at": 8}}, "kto.desirable_at"),
        ({"kto": {"undesirable_at": 0.5}}, "kto.undesirable_at"),
        ({"kto": {"undesirable_at": 5}}, "kto.undesirable_at"),  # not below desirable_at (5)
        ({"kto": {"desirable_at": 2.5}}, "kto.desirable_at"),  # not above undesirable_at (3)
        ({"kto": {"epochs": 0}}, "kto.epochs"),
        ({"kto": {"lr": 0}}, "kto.lr"),
        ({"kto": {"beta": 0.1}}, "kto.beta"),  # β is the project's own beta, as for DPO
        ({"kto": 1}, "kto"),
        ({"algorithm": "kto", "reliability": {"enabled": True}}, "reliability.enabled"),
        ({"algorithm": "kto", "processes": 2}, "processes"),
    ],
)
def test_a_bad_kto_setting_is_a_400_naming_the_key(make_user, api_client_for, config, key):
    response = _post(api_client_for(make_user(staff=True)), config)
    assert response.status_code == 400, response.json()
    assert key in response.json()["config"], response.json()


@pytest.mark.django_db
def test_kto_is_a_text_algorithm_with_overrides_and_defaults(make_user, api_client_for):
    kto = {"desirable_weight": 1.33, "undesirable_at": 2, "epochs": 3, "lr": 5e-5}
    response = _post(api_client_for(make_user(staff=True)), {"algorithm": "kto", "kto": kto})
    assert response.status_code == 201, response.json()
    config = project_config("text", response.json()["config"])
    assert (config.algorithm, config.kto, config.beta) == ("kto", kto, 0.1)
    assert (DESIRABLE_AT, UNDESIRABLE_AT) == (5, 3)  # what kto.desirable_at etc. default to
