from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: `manage.py runplatform` (what `make run` starts), its projects and accounts
    (`seed_demo`), and the demo language model (`build_demo_lm`). Nothing imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo"
