from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.errors import DomainError
from labeling.models import Project
from training import round_metrics, selectors, services
from training.management.commands._teachers import add_teacher_arguments, teacher_from_options
from training.models import Run
from training.runner import run_round_here, run_step_here
from training.simulation import simulate_judgements


class Command(BaseCommand):
    help = (
        "Run rounds of the loop in the foreground. With --teacher, a synthetic teacher judges "
        "the open comparisons before each round (a project without any first gets "
        "comparisons from its initial policy), so every round trains on judgements."
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
            if teacher is not None and not project.comparisons.exists():
                self._first_comparisons(project)
            for i in range(options["rounds"]):
                if teacher is not None:
                    judged = simulate_judgements(
                        project=project,
                        teacher_name=options["teacher"],
                        teacher=teacher,
                        limit=None,
                        seed=options["seed"] * 1000 + i,
                    )
                    self.stdout.write(f"sim-{options['teacher']} judged {judged} comparisons")
                self._report(project, self._round(project))
        except DomainError as exc:
            raise CommandError(exc.message) from None
        finally:
            services.auto_rounds.reset(token)

    def _first_comparisons(self, project) -> None:
        step = services.start_first_comparisons(project=project, trigger="cli")
        with tqdm(total=1, desc="first comparisons", unit="step") as bar:
            try:
                step = run_step_here(step)
            except Exception as exc:
                step.refresh_from_db()
                raise CommandError(f"Making the first comparisons failed: {step.error}") from exc
            bar.update(1)
        made = step.metrics.get("comparisons/created", 0)
        self.stdout.write(f"first comparisons: {made} from the initial policy")

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

    def _report(self, project, round_run: Run) -> None:
        """The round's key metrics of the project's kind (training.round_metrics)."""
        shown = round_metrics.round_summary(project, selectors.metrics_of_round(round_run))
        self.stdout.write(
            self.style.SUCCESS(f"round {round_run.number}: {round_run.status}; {shown}")
        )
