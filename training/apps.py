from django.apps import AppConfig


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from labeling.config import register_config
        from training import roles, signals  # noqa: F401  (signals connects the receivers)
        from training.kinds.config import CONFIG_TYPES

        roles.connect()
        for kind, config_type in CONFIG_TYPES.items():
            register_config(kind, config_type)
