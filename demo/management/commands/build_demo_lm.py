from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from demo import lm_build
from training.ml.lm.demo_lm import DEMO_CORPUS, build_demo_lm


class Command(BaseCommand):
    help = (
        "Train the small demo GPT-2-style model and its byte-level BPE tokenizer on the "
        "corpus shipped in demo/ (a few minutes on 2 CPU cores), in the foreground; cached "
        "under .data/. `make run` builds it on the worker in the background instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=None, help="Default: .data/demo-lm")
        parser.add_argument("--force", action="store_true", help="Rebuild even if cached.")
        parser.add_argument("--steps", type=int, default=None, help="Training steps.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, out, force, steps, seed, **options):
        out = out or lm_build.model_dir()
        if lm_build.is_built(out) and not force:
            self.stdout.write(f"The demo model is already built at {out} (--force rebuilds).")
            return
        extra = {"steps": steps} if steps else {}
        with tqdm(total=100, desc="demo LM", unit="%") as bar:

            def progress(fraction: float) -> None:
                bar.update(round(100 * fraction) - bar.n)

            build_demo_lm(
                corpus_path=DEMO_CORPUS, out_dir=out, seed=seed, progress=progress, **extra
            )
        self.stdout.write(self.style.SUCCESS(f"Demo model and tokenizer saved to {out}."))
