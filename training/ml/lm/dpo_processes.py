"""DPO over several processes: train_dpo run by ``torchrun`` (data parallel, gloo on the
CPU, NCCL with one GPU per process), started from the caller's process, which gets the
trained weights back into its own policy and the metrics, as from train_dpo itself.

Both ends of the hand-over are here. The caller (train_dpo_in_processes) writes a job
directory: the policy as save_pretrained writes it (a LoRA policy: its adapter, whose
config names the base), the pairs, weights and hyperparameters (JOB_FILE). It starts
``python -m torch.distributed.run --standalone --nproc_per_node=N -m
training.ml.lm.dpo_processes --job DIR --device D``; every process (main) loads the policy,
joins the process group and runs train_dpo on its share of each batch
(training/ml/lm/distributed.py). Process 0 appends progress and each step's loss to
EVENTS_FILE, which the caller reads while it waits, then saves the trained parameters and
the metrics. A process that fails writes its error beside them, and the caller raises it
with the end of torchrun's stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.ml.lm import distributed, lm, lora
from training.ml.lm.dpo import DPOConfig, PreferencePair, train_dpo

ENTRY_MODULE = "training.ml.lm.dpo_processes"
POLICY_DIR = "policy"  # the policy as training starts
JOB_FILE = "job.json"  # pairs, weights, seed, DPOConfig
EVENTS_FILE = "events.jsonl"  # process 0: {"progress": f} and {"step": s, "loss": l} lines
TRAINED_FILE = "trained.pt"  # process 0: {name: tensor} of the trained parameters
METRICS_FILE = "metrics.json"  # process 0: train_dpo's metrics, written last
ERROR_PREFIX = "error."  # error.<rank>: why that process failed
STDERR_TAIL_CHARS = 4000
POLL_S = 0.2
STOP_GRACE_S = 10.0
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # where `-m training...` is importable


def train_dpo_in_processes(
    *,
    processes: int,
    policy: PreTrainedModel,
    reference: nn.Module | None = None,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    beta: float = DPOConfig.beta,
    label_smoothing: float = DPOConfig.label_smoothing,
    weights: Sequence[float] | None = None,
    epochs: int = DPOConfig.epochs,
    lr: float = DPOConfig.lr,
    batch_size: int = DPOConfig.batch_size,
    max_grad_norm: float = DPOConfig.max_grad_norm,
    dtype: str = DPOConfig.dtype,
    closing_pass: bool = DPOConfig.closing_pass,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """train_dpo's contract (``policy`` trained in place, its metrics returned), run by
    ``processes`` torchrun processes on ``device``'s type: the CPU, or one GPU each.

    reference: None (the policy as it starts) or lora.reference_of(policy); each process
    rebuilds it from its own copy of the policy, so no other reference can be given.
    progress and on_step are called here, from process 0's reports, while this waits.
    Raises RuntimeError, with the failing process's error and the end of torchrun's
    stderr, when a process fails."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}.")
    if reference is not None and not isinstance(reference, lora.AdaptersDisabled):
        raise ValueError(
            "Over several processes π_ref is the policy as it starts, or a LoRA policy's "
            "base (lora.reference_of(policy)); another reference model cannot be sent."
        )
    if torch.device(device).type == "cuda" and processes > torch.cuda.device_count():
        raise ValueError(
            f"{processes} processes need {processes} GPUs, and {torch.cuda.device_count()} "
            "are visible: lower processes."
        )
    config = DPOConfig(
        beta=beta,
        label_smoothing=label_smoothing,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_grad_norm=max_grad_norm,
        dtype=dtype,
        closing_pass=closing_pass,
    )
    with tempfile.TemporaryDirectory(prefix="dpo-processes-") as tmp:
        job = Path(tmp)
        lm.save_policy(policy, tokenizer, job / POLICY_DIR)
        (job / JOB_FILE).write_text(
            json.dumps(
                {
                    "pairs": [list(pair) for pair in pairs],
                    "weights": None if weights is None else [float(w) for w in weights],
                    "seed": seed,
                    "config": dataclasses.asdict(config),
                }
            )
        )
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            ENTRY_MODULE,
            "--job",
            str(job),
            "--device",
            torch.device(device).type,
        ]
        _run(command, job=job, processes=processes, progress=progress, on_step=on_step)
        trained = torch.load(job / TRAINED_FILE, map_location="cpu", weights_only=True)
        _copy_trained(policy, trained)
        return json.loads((job / METRICS_FILE).read_text())


def _run(
    command: list[str],
    *,
    job: Path,
    processes: int,
    progress: Callable[[float], None] | None,
    on_step: Callable[[int, float], None] | None,
) -> None:
    """Run torchrun, passing process 0's events on until it exits; stop it (its whole
    process group) if this is interrupted, a progress callback raising included."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    events = job / EVENTS_FILE
    read = 0
    with open(job / "stdout.log", "wb") as out, open(job / "stderr.log", "wb") as err:
        child = subprocess.Popen(
            command, stdout=out, stderr=err, env=env, cwd=PROJECT_ROOT, start_new_session=True
        )
        try:
            while True:
                code = child.poll()  # before reading, so that nothing written is missed
                if events.is_file():
                    with open(events, "rb") as f:
                        f.seek(read)
                        chunk = f.read()
                    complete = chunk[: chunk.rfind(b"\n") + 1]
                    read += len(complete)
                    for line in complete.decode().splitlines():
                        event = json.loads(line)
                        if "progress" in event and progress is not None:
                            progress(event["progress"])
                        if "step" in event and on_step is not None:
                            on_step(event["step"], event["loss"])
                if code is not None:
                    break
                time.sleep(POLL_S)
        finally:
            if child.poll() is None:
                _stop(child)
    if code != 0 or not (job / METRICS_FILE).is_file():
        raise RuntimeError(_failure(job, processes=processes, code=code))


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM to torchrun's process group (it and the processes it started), then SIGKILL."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


def _failure(job: Path, *, processes: int, code: int) -> str:
    """What the step's error says: the first failing process's error on the first line,
    then the end of torchrun's stderr."""
    errors = sorted(job.glob(f"{ERROR_PREFIX}*"), key=lambda p: int(p.suffix[1:] or 0))
    stderr = (job / "stderr.log").read_text(errors="replace")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if errors:
        why = f"process {errors[0].suffix[1:]}: {errors[0].read_text().splitlines()[0]}"
    else:
        why = lines[-1] if lines else "no error message"
    return (
        f"DPO over {processes} processes failed (torchrun exit status {code}): {why}\n"
        f"The end of torchrun's stderr:\n{stderr[-STDERR_TAIL_CHARS:]}"
    )


def _copy_trained(policy: nn.Module, trained: dict[str, torch.Tensor]) -> None:
    """Put the trained parameters into ``policy``, in place: they must be exactly its own."""
    params = {name: p for name, p in policy.named_parameters() if p.requires_grad}
    if set(params) != set(trained):
        raise RuntimeError(
            "The processes trained other parameters than the policy has: "
            f"{sorted(set(params) ^ set(trained))[:5]}."
        )
    with torch.no_grad():
        for name, value in trained.items():
            params[name].copy_(value)


# --- each torchrun process --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """One process of the job: train on its shares; process 0 reports and saves."""
    parser = argparse.ArgumentParser(description="One process of a DPO job (torchrun).")
    parser.add_argument("--job", type=Path, required=True, help="the job directory")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU a process)")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    try:
        device = distributed.start_process_group(args.device)
        _train(args.job, device=device, rank=rank)
    except BaseException as exc:
        (args.job / f"{ERROR_PREFIX}{rank}").write_text(f"{type(exc).__name__}: {exc}\n")
        raise
    finally:
        distributed.stop_process_group()


def _train(job_dir: Path, *, device: torch.device, rank: int) -> None:
    job = json.loads((job_dir / JOB_FILE).read_text())
    config = DPOConfig(**job["config"])
    policy, tokenizer = lora.load_policy(job_dir / POLICY_DIR, trainable=True, device=device)
    events = open(job_dir / EVENTS_FILE, "a") if rank == 0 else None

    def report(event: dict) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    try:
        metrics = train_dpo(
            policy=policy,
            reference=lora.reference_of(policy),
            tokenizer=tokenizer,
            pairs=[tuple(pair) for pair in job["pairs"]],
            weights=job["weights"],
            beta=config.beta,
            label_smoothing=config.label_smoothing,
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            max_grad_norm=config.max_grad_norm,
            dtype=config.dtype,
            closing_pass=config.closing_pass,
            seed=job["seed"],
            device=device,
            progress=None if events is None else lambda f: report({"progress": f}),
            on_step=None if events is None else lambda s, loss: report({"step": s, "loss": loss}),
        )
    finally:
        if events is not None:
            events.close()
    if rank != 0:
        return
    trained = {n: p.detach().cpu() for n, p in policy.named_parameters() if p.requires_grad}
    torch.save(trained, job_dir / f"{TRAINED_FILE}.part")
    (job_dir / f"{TRAINED_FILE}.part").rename(job_dir / TRAINED_FILE)
    (job_dir / METRICS_FILE).write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
