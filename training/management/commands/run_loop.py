from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import DomainError
from labeling.models import Project
from training import services
from training.management.commands._teachers import add_teacher_arguments, teacher_from_options
from training.models import Run
from training.runner import run_round_here
from training.simulation import simulate_judgements


class Command(BaseCommand):
    help = (
        "Run rounds of the loop in the foreground. With --teacher, each round's new "
        "comparisons are judged by a synthetic teacher before the next round starts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--rounds", type=int, required=True)
        add_teacher_arguments(parser, required=False)
        parser.add_argument("--seed", type=int, default=0, help="Seed of the teacher's noise.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        if options["rounds"] < 1:
            raise CommandError("--rounds must be at least 1.")
        teacher = teacher_from_options(options)
        token = services.auto_rounds.set(False)  # this command starts the rounds itself
        try:
            for i in range(options["rounds"]):
                round_run = self._round(project)
                if teacher is not None:
                    judged = simulate_judgements(
                        project=project,
                        teacher_name=options["teacher"],
                        teacher=teacher,
                        limit=None,
                        seed=options["seed"] * 1000 + i,
                    )
                    self.stdout.write(f"  sim-{options['teacher']} judged {judged} comparisons")
                self._report(round_run)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        finally:
            services.auto_rounds.reset(token)

    def _round(self, project) -> Run:
        round_run = services.start_round(project=project, trigger="cli", enqueue=False)
        steps = round_run.steps.count()
        with tqdm(total=steps, desc=f"round {round_run.number}", unit="step") as bar:

            def before_step(step: Run) -> None:
                bar.update(1 if bar.postfix else 0)
                bar.set_postfix_str(step.kind)

            try:
                round_run = run_round_here(round_run, before_step=before_step)
            except Exception as exc:
                round_run.refresh_from_db()
                raise CommandError(f"Round {round_run.number} failed: {round_run.error}") from exc
            bar.update(steps - bar.n)
        return round_run

    def _report(self, round_run: Run) -> None:
        metrics = {}
        for step in round_run.steps.order_by("pk"):
            metrics.update(step.metrics)
        shown = ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in metrics.items()
            if k.startswith(("reward/heldout", "charts/true_return", "comparisons/created"))
        )
        self.stdout.write(
            self.style.SUCCESS(f"round {round_run.number}: {round_run.status}; {shown}")
        )
