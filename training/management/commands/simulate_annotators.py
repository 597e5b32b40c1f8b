from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import DomainError
from labeling.models import Project
from training.management.commands._teachers import add_teacher_arguments, teacher_from_options
from training.simulation import simulate_judgements


class Command(BaseCommand):
    help = "Judge open comparisons with a synthetic teacher, through the same services as people."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")
        add_teacher_arguments(parser, required=True)
        parser.add_argument("--judgements", type=int, required=True, help="How many at most.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        if options["judgements"] < 1:
            raise CommandError("--judgements must be at least 1.")
        teacher = teacher_from_options(options)
        with tqdm(total=options["judgements"], desc="judgements", unit="j") as bar:
            try:
                done = simulate_judgements(
                    project=project,
                    teacher_name=options["teacher"],
                    teacher=teacher,
                    limit=options["judgements"],
                    seed=options["seed"],
                    on_judgement=lambda: bar.update(1),
                )
            except DomainError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(f"{done} judgements recorded by sim-{options['teacher']}.")
        )
