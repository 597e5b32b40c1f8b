import shutil
import zipfile
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from training.models import Policy


class Command(BaseCommand):
    help = (
        "Write a policy version out of storage. A text project's policy becomes a Hugging "
        "Face model directory (from_pretrained loads it); others a checkpoint file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--policy-version", type=int, default=None, help="Default: the newest.")
        parser.add_argument("--out", type=Path, required=True)

    def handle(self, *args, project, policy_version, out, **options):
        version = policy_version
        policies = Policy.objects.filter(project__slug=project).order_by("-version")
        if version is not None:
            policies = policies.filter(version=version)
        policy = policies.first()
        if policy is None:
            raise CommandError(f"No policy {version or '(any)'} in project {project!r}.")
        if out.exists() and any(out.iterdir() if out.is_dir() else [out]):
            raise CommandError(f"{out} exists and is not empty; choose another --out.")
        with default_storage.open(policy.checkpoint.name, "rb") as f:
            if policy.checkpoint.name.endswith(".zip"):
                with zipfile.ZipFile(f) as archive:
                    archive.extractall(out)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                with open(out, "wb") as target:
                    shutil.copyfileobj(f, target)
        self.stdout.write(self.style.SUCCESS(f"Policy v{policy.version} of {project} → {out}"))
