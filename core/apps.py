from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Site-wide plumbing every app may use and none is used by: errors, SQL helpers,
    outage handling, authentication, and the API's schema, token and JSON 404 views."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import signals

        signals.connect()
