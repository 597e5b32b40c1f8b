"""What each role may do in the training app (core/roles.py explains the roles)."""

from core.roles import grant

_SEE = ["view_run", "view_policy", "view_rewardmodel", "view_arena"]


def connect() -> None:
    grant(
        "training",
        {
            "manager": [*_SEE, "start_round", "export_policy", "start_arena"],
            "reviewer": _SEE,
        },
    )
