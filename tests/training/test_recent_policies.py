"""New comparisons drawn from the recent policies, not only the newest (recent_policies)."""

import pytest
from django.core.management import call_command

from labeling.models import Item

CONFIG = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "algorithm": "reinforce",
    "env_steps_per_round": 400,
    "comparisons_per_round": 8,
    "selection": "random",
    "ensemble_size": 2,
    "render_clips": False,
    "eval_episodes": 2,
    "recent_policies": 2,
    "seed": 5,
}


@pytest.mark.django_db
def test_each_round_pairs_segments_of_the_newest_policies(media_root, make_project):
    make_project("recent", kind="trajectory", config=CONFIG, round_size=10_000)
    call_command("run_loop", project="recent", rounds=3, teacher="rational")

    def versions(round_number: int) -> set[int]:
        items = Item.objects.filter(project__slug="recent", data__round=round_number)
        return {item.data["policy_version"] for item in items}

    assert versions(0) == {0}  # the first comparisons, before round 1: the initial policy
    assert versions(1) == {0, 1}
    assert versions(3) == {2, 3}  # versions 0 and 1 are no longer among the two newest
