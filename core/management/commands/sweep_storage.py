from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from core import storage


class Command(BaseCommand):
    help = (
        "List stored files that no row names (left by a worker that was killed while it "
        "wrote them), older than --older-than hours; --delete deletes them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=24.0,
            help="Hours (default 24): younger files may belong to work still running.",
        )
        parser.add_argument("--delete", action="store_true", help="Delete them (default: list).")

    def handle(self, *args, older_than, delete, **options):
        if older_than < 0:
            raise CommandError(f"--older-than must be 0 or more hours; got {older_than}.")
        orphans = storage.unreferenced_files(older_than=timedelta(hours=older_than))
        for name in orphans:
            self.stdout.write(name)
        if delete:
            storage.delete_now(orphans)
        verb = "deleted" if delete else "found (run with --delete to delete them)"
        self.stdout.write(self.style.SUCCESS(f"{len(orphans)} unreferenced file(s) {verb}."))
