"""What each role may do in the labeling app (core/roles.py explains the roles)."""

from core.roles import grant

_SEE = ["view_project", "view_membership", "view_item", "view_comparison", "view_judgement"]


def connect() -> None:
    grant(
        "labeling",
        {
            "manager": [
                *_SEE,
                "add_project",
                "change_project",
                "manage_members",
                "import_items",
                "view_importjob",
                "export_judgements",
                "view_webhook",
                "view_webhookdelivery",
            ],
            "reviewer": [*_SEE, "export_judgements"],
        },
    )
