from django.apps import AppConfig


class LabelingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        from labeling import file_cleanup, roles

        file_cleanup.connect()
        roles.connect()
