from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import InvalidInput
from training import policy_export
from training.models import Policy


class Command(BaseCommand):
    help = (
        "Write a policy version out of storage. A text project's policy becomes a Hugging "
        "Face model directory (from_pretrained loads it); others a checkpoint file. A LoRA "
        "policy gives its adapter merged into the base (--weights merged, the default) or "
        "the adapter alone (--weights adapter, which peft loads on the base)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--policy-version", type=int, default=None, help="Default: the newest.")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument(
            "--weights",
            choices=policy_export.WEIGHTS,
            default=None,
            help="merged (the default): whole weights; adapter: a LoRA policy's adapter only.",
        )

    def handle(self, *args, project, policy_version, out, weights, **options):
        version = policy_version
        policies = Policy.objects.filter(project__slug=project).order_by("-version")
        if version is not None:
            policies = policies.filter(version=version)
        policy = policies.first()
        if policy is None:
            raise CommandError(f"No policy {version or '(any)'} in project {project!r}.")
        if out.exists() and any(out.iterdir() if out.is_dir() else [out]):
            raise CommandError(f"{out} exists and is not empty; choose another --out.")
        try:
            weights = policy_export.checked_weights(policy, weights)
        except InvalidInput as exc:
            raise CommandError(exc.message) from None
        if policy_export.needs_merge(policy, weights):
            policy_export.write_merged(policy, out)
        else:
            policy_export.write_stored(policy, out)
        self.stdout.write(self.style.SUCCESS(f"Policy v{policy.version} of {project} → {out}"))
