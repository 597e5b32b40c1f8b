"""DPO throughput on CPU: this platform's train_dpo beside TRL's DPOTrainer, in one run.

Both sides train the same GPT-2 (random init from seed 0, saved once and loaded by each
run) with the same byte-level BPE tokenizer (trained in place on the benchmark's texts with
the `tokenizers` library, as training/ml/lm/demo_lm.py trains the demo's), on the same
synthetic pairs in the same order (the platform's epoch-1 permutation; TRL reads the
dataset in that order with `train_sampling_strategy="sequential"`), with the same
objective: sigmoid DPO, β 0.1, AdamW at a constant lr 1e-4 without weight decay, gradient
norm clipped at 10 (the platform's), batch 16, one epoch, no dropout, max length 128 (no
sequence reaches it, so neither side's truncation acts). Texts join on a space, so the
tokenized prompt is a prefix of the tokenized prompt + response and TRL's joint
tokenization gives the platform's ids (each run reports its token count; they must agree).

Settings (--settings):
  small  GPT-2, 4 layers, width 256, 4 heads, vocab 512; 512 pairs (prompts of 16 words,
         responses of 32)
  wide   6 layers, width 512, 8 heads; the same pairs
  k4     the small model; K = 4 rankings of 128 prompts: each ranking's C(4, 2) = 6 pairs,
         768 in all, given to the platform as text.py gives them (grouped by judgement)
         and to TRL as rows
Rows (--configs):
  platform-before     train_dpo as text.py calls it, from the tree --before-tree names (a
                      copy of the repository before a change): before and after, measured
                      interleaved under the same load
  platform            train_dpo as training/kinds/text.py calls it (its defaults)
  platform-fast       train_dpo(dtype="bfloat16", closing_pass=False): bf16 autocast, the
                      metrics from the training batches (where train_dpo has the options)
  platform-fast-fp32  train_dpo(dtype="float32", closing_pass=False)
  trl-defaults        TRL 1.16's DPOConfig defaults: bf16 on, gradient checkpointing on,
                      reference forward each step
  trl-fp32, trl-bf16  gradient checkpointing off
  trl-fp32-pre, trl-bf16-pre   ... and precompute_ref_log_probs (its pass is timed)

Each run is a fresh process (so peak RSS, ru_maxrss, is that run's), runs interleaved over
--reps repetitions, the median reported. pairs/s and tokens/s count from the start of
training (tokenizing the texts included; for TRL, building the DPOTrainer) to its end;
tokens are the real (unpadded) tokens of the 2 × pairs sequences. Loss at step 1 is log 2
on both sides (π_θ = π_ref there), so the runs also report the step-1 mean log π(y_w|x) and
the loss at step 2 (after one identical update): these say the two compute the same thing.
rewards/accuracies: TRL's is the mean over the epoch of its per-batch metric; the
platform's is what train_dpo returns.

    make bench-trl          # once: TRL into .venv-trl (benchmarks/requirements-trl.txt)
    .venv/bin/python benchmarks/dpo_throughput.py                  # 3 repetitions
    .venv/bin/python benchmarks/dpo_throughput.py --quick          # one small repetition
    .venv/bin/python benchmarks/dpo_throughput.py --profile small  # where the platform's time goes
    .venv/bin/python benchmarks/dpo_throughput.py --before-tree ../copy-before --threads 1

On a shared machine, other tenants' load swings 2-thread runs by 2-4x; each run records
the 1-minute load at its start and its training's CPU seconds beside the wall time, and
--threads 1 is the steadier comparison.

Writes benchmarks/results/dpo_throughput.json and a bar chart of pairs/s (.png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TRL_PYTHON = REPO / ".venv-trl" / "bin" / "python"

VOCAB_SIZE = 512
MAX_LENGTH = 128
PROMPT_WORDS, RESPONSE_WORDS = 16, 32
BATCH_SIZE, EPOCHS, LR, BETA, SEED = 16, 1, 1e-4, 0.1, 0
MAX_GRAD_NORM = 10.0  # the platform's DPOConfig.max_grad_norm; TRL's default is 1.0

SETTINGS: dict[str, dict] = {
    "small": {"n_layer": 4, "n_embd": 256, "n_head": 4, "pairs": 512},
    "wide": {"n_layer": 6, "n_embd": 512, "n_head": 8, "pairs": 512},
    "k4": {"n_layer": 4, "n_embd": 256, "n_head": 4, "rankings": 128, "k": 4},
}
CONFIGS: dict[str, dict] = {
    "platform-before": {"side": "platform", "options": {}, "tree": "before"},
    "platform": {"side": "platform", "options": {}},
    "platform-fast": {
        "side": "platform",
        "options": {"dtype": "bfloat16", "closing_pass": False},
    },
    "platform-fast-fp32": {
        "side": "platform",
        "options": {"dtype": "float32", "closing_pass": False},
    },
    "trl-defaults": {"side": "trl", "trl": {}},
    "trl-fp32": {"side": "trl", "trl": {"bf16": False, "gradient_checkpointing": False}},
    "trl-bf16": {"side": "trl", "trl": {"bf16": True, "gradient_checkpointing": False}},
    "trl-fp32-pre": {
        "side": "trl",
        "trl": {"bf16": False, "gradient_checkpointing": False, "precompute_ref_log_probs": True},
    },
    "trl-bf16-pre": {
        "side": "trl",
        "trl": {"bf16": True, "gradient_checkpointing": False, "precompute_ref_log_probs": True},
    },
}

# --- the synthetic data ------------------------------------------------------------------------
NEUTRAL = (
    "the a of and to in is was for on with as at by from this that it be are or an have not "
    "but had his they you were her she which their all there can been one would when so what "
    "if will out up more other into some could time them these two may then do first any like "
    "now my over such our man me even most made after also did many before must through back "
    "years where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might us great old year off come since"
).split()
POSITIVE = "lovely wonderful bright kind gentle happy warm calm clever brave".split()
NEGATIVE = "awful dreary cruel bitter gloomy harsh cold dull rude grim".split()


def make_response(rng: random.Random, quality: int, levels: int) -> str:
    """32 words, quality/levels of the sentiment words warm, the rest sour; " "-led so the
    prompt + response tokenizes as the prompt's tokens, then the response's."""
    words = [rng.choice(NEUTRAL) for _ in range(RESPONSE_WORDS)]
    slots = rng.sample(range(RESPONSE_WORDS), 8)
    warm = round(8 * quality / (levels - 1))
    for n, slot in enumerate(slots):
        words[slot] = rng.choice(POSITIVE if n < warm else NEGATIVE)
    return " " + " ".join(words)


def make_pairs(setting: dict, *, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected); for rankings, each prompt's C(K, 2) pairs in a row."""
    rng = random.Random(seed)

    def prompt() -> str:
        return " ".join(rng.choice(NEUTRAL) for _ in range(PROMPT_WORDS))

    if "rankings" not in setting:
        return [
            (prompt(), make_response(rng, rng.randint(2, 3), 4), make_response(rng, 0, 4))
            for _ in range(setting["pairs"])
        ]
    k, pairs = setting["k"], []
    for _ in range(setting["rankings"]):
        x = prompt()
        best_first = [make_response(rng, k - 1 - i, k) for i in range(k)]
        pairs += [(x, best_first[i], best_first[j]) for i in range(k) for j in range(i + 1, k)]
    return pairs


def epoch_order(n: int, *, seed: int) -> list[int]:
    """The platform's first-epoch permutation (train_dpo's torch.randperm)."""
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def build_inputs(work: Path, settings: list[str]) -> dict[str, dict]:
    """Per setting: the pairs (JSON), the tokenizer and the initial model (a directory)."""
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.ml.lm.demo_lm import train_tokenizer
    from training.ml.lm.lm import encode_prompts, encode_responses

    built = {}
    for name in settings:
        setting = SETTINGS[name]
        pairs = make_pairs(setting, seed=SEED)
        texts = [text for pair in pairs for text in pair]
        tokenizer = train_tokenizer(examples=texts, vocab_size=VOCAB_SIZE)
        prompt_ids = encode_prompts(tokenizer, [p for p, _, _ in pairs])
        lengths = [
            len(x) + len(y)
            for index in (1, 2)
            for x, y in zip(
                prompt_ids,
                encode_responses(tokenizer, [pair[index] for pair in pairs]),
                strict=True,
            )
        ]
        if max(lengths) > MAX_LENGTH:
            raise SystemExit(
                f"{name}: a sequence of {max(lengths)} tokens; keep under {MAX_LENGTH}."
            )
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=MAX_LENGTH,  # the platform truncates at the model's n_positions
            n_embd=setting["n_embd"],
            n_layer=setting["n_layer"],
            n_head=setting["n_head"],
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(SEED)
        model = GPT2LMHeadModel(config)
        model_dir = work / f"model-{name}"
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        data = work / f"pairs-{name}.json"
        data.write_text(json.dumps({"pairs": pairs, "order": epoch_order(len(pairs), seed=SEED)}))
        built[name] = {
            "model": str(model_dir),
            "data": str(data),
            "pairs": len(pairs),
            "tokens": sum(lengths),
            "max_tokens": max(lengths),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    return built


# --- one run, in its own process ---------------------------------------------------------------
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_platform(job: dict) -> dict:
    """train_dpo as text.py calls it, on this setting's sizes; dpo_loss is wrapped to read
    each step's loss and metrics (the wrapper returns what it is given)."""
    sys.path.insert(0, job.get("tree") or str(REPO))
    import inspect

    import torch

    from training.ml.lm import dpo
    from training.ml.lm.lm import load_causal_lm

    torch.set_num_threads(job["threads"])
    options = dict(job["options"])
    unknown = set(options) - set(inspect.signature(dpo.train_dpo).parameters)
    if unknown:
        return {"skipped": f"train_dpo has no option {sorted(unknown)} in this tree"}
    pairs = [tuple(p) for p in json.loads(Path(job["data"]).read_text())["pairs"]]
    policy, tokenizer = load_causal_lm(job["model"])
    steps: list[dict] = []
    loss_of_pairs = dpo.dpo_loss

    def observed_dpo_loss(policy_chosen, *args, **kwargs):
        losses, chosen, rejected = loss_of_pairs(policy_chosen, *args, **kwargs)
        if policy_chosen.requires_grad:  # a training step, not a no-grad scoring pass
            steps.append(
                {
                    "loss": losses.detach().float().mean().item(),
                    "accuracy": (chosen > rejected).float().mean().item(),
                    "logps_chosen": policy_chosen.detach().float().mean().item(),
                }
            )
        return losses, chosen, rejected

    dpo.dpo_loss = observed_dpo_loss
    started, cpu_started = time.perf_counter(), time.process_time()
    metrics = dpo.train_dpo(
        policy=policy,
        tokenizer=tokenizer,
        pairs=pairs,
        beta=BETA,
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH_SIZE,
        seed=SEED,
        **options,
    )
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "train_cpu_s": time.process_time() - cpu_started,
        "steps": steps,
        "accuracy": metrics["rewards/accuracies"],
        "margins": metrics["rewards/margins"],
        "metrics": metrics,
    }


def run_trl(job: dict) -> dict:
    """TRL's DPOTrainer on the same model, tokenizer and pairs, in the platform's order.
    Imports nothing of the platform (it runs in .venv-trl)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(job["threads"])
    data = json.loads(Path(job["data"]).read_text())
    rows = [data["pairs"][i] for i in data["order"]]
    model = AutoModelForCausalLM.from_pretrained(job["model"], local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(job["model"], local_files_only=True)
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=BATCH_SIZE,
            num_train_epochs=EPOCHS,
            learning_rate=LR,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            max_grad_norm=MAX_GRAD_NORM,
            beta=BETA,
            max_length=MAX_LENGTH,
            seed=SEED,
            train_sampling_strategy="sequential",
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            **job["trl"],
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        dataset = Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in rows])
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        built = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
        train_cpu = time.process_time() - cpu_started
    prepared = trainer.train_dataset
    tokens = sum(
        2 * len(x) + len(c) + len(r)
        for x, c, r in zip(
            prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True
        )
    )
    logged = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    steps = [
        {
            "loss": entry["loss"],
            "accuracy": entry["rewards/accuracies"],
            "logps_chosen": entry["logps/chosen"],
        }
        for entry in logged
    ]
    return {
        "wall_s": wall,
        "train_cpu_s": train_cpu,
        "init_s": built - started,  # tokenizing, and the precompute pass when on
        "steps": steps,
        "tokens_seen": tokens,
        "accuracy": statistics.fmean(s["accuracy"] for s in steps),
        "margins": statistics.fmean(entry["rewards/margins"] for entry in logged),
    }


def one(job: dict) -> None:
    load = os.getloadavg()[0]
    found = run_platform(job) if job["side"] == "platform" else run_trl(job)
    found["peak_rss_mib"] = peak_rss_mib()
    used = resource.getrusage(resource.RUSAGE_SELF)
    found["cpu_s"] = used.ru_utime + used.ru_stime  # the whole process, imports included
    found["load_at_start"] = load  # the machine's 1-minute load: other tenants' share
    print(json.dumps(found))


# --- where the platform's time goes ------------------------------------------------------------
def profile(job: dict) -> dict:
    """One platform run with timers on the model's forward (by phase: the reference pass,
    training steps, a closing no-grad pass), backward, the optimizer step, tokenizing and
    collating; what is left is Python and the loss's own arithmetic."""
    sys.path.insert(0, str(REPO))
    import torch
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    from training.ml.lm import dpo
    from training.ml.lm.lm import load_causal_lm

    torch.set_num_threads(job["threads"])
    pairs = [tuple(p) for p in json.loads(Path(job["data"]).read_text())["pairs"]]
    policy, tokenizer = load_causal_lm(job["model"])
    spent: dict[str, float] = {}
    state = {"optimizer_steps": 0, "nested": 0}

    def add(key: str, seconds: float) -> None:
        spent[key] = spent.get(key, 0.0) + seconds

    def timed(key: str, function):
        def wrapper(*args, **kwargs):
            state["nested"] += 1
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                state["nested"] -= 1
                if state["nested"] == 0 or key == "forward":
                    add(key, time.perf_counter() - begun)

        return wrapper

    for name, key in (
        ("encode_prompts", "tokenize"),
        ("encode_responses", "tokenize"),
        ("collate_prompt_response", "collate"),
    ):
        if hasattr(dpo, name):
            setattr(dpo, name, timed(key, getattr(dpo, name)))
    forward_started: list[float] = []

    def phase() -> str:
        if torch.is_grad_enabled():
            return "policy forward (training steps)"
        if state["optimizer_steps"] == 0:
            return "reference forward (no grad)"
        return "closing scoring pass (no grad)"

    policy.register_forward_pre_hook(lambda *_: forward_started.append(time.perf_counter()))
    policy.register_forward_hook(
        lambda *_: add(phase(), time.perf_counter() - forward_started.pop())
    )
    backward = torch.Tensor.backward

    def timed_backward(self, *args, **kwargs):
        begun = time.perf_counter()
        backward(self, *args, **kwargs)
        add("backward", time.perf_counter() - begun)

    torch.Tensor.backward = timed_backward
    step_started: list[float] = []

    def before_step(*_):
        step_started.append(time.perf_counter())

    def after_step(*_):
        state["optimizer_steps"] += 1
        add("optimizer step + clip", time.perf_counter() - step_started.pop())

    register_optimizer_step_pre_hook(before_step)
    register_optimizer_step_post_hook(after_step)
    started = time.perf_counter()
    dpo.train_dpo(
        policy=policy,
        tokenizer=tokenizer,
        pairs=pairs,
        beta=BETA,
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH_SIZE,
        seed=SEED,
        **job["options"],
    )
    total = time.perf_counter() - started
    spent["other (log-softmax, loss, Python)"] = total - sum(spent.values())
    return {"total_s": total, "spent_s": spent}


# --- the driver --------------------------------------------------------------------------------
def launch(job: dict) -> dict:
    python = sys.executable if job["side"] == "platform" else str(TRL_PYTHON)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
    }
    with tempfile.TemporaryDirectory() as cache:
        env["HF_DATASETS_CACHE"] = cache  # a fresh cache: no run reuses another's precompute
        done = subprocess.run(
            [python, __file__, "--one", json.dumps(job)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        return {**job, "error": done.stderr[-3000:]}
    return {**job, **json.loads(done.stdout.strip().splitlines()[-1])}


def summarise(runs: list[dict], inputs: dict[str, dict]) -> list[dict]:
    cells: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        if "error" not in run and "skipped" not in run:
            cells.setdefault((run["setting"], run["config"]), []).append(run)
    rows = []
    for (setting, config), done in cells.items():
        size = inputs[setting]

        def median(values):
            return statistics.median(values)

        steps = [run["steps"] for run in done]
        rows.append(
            {
                "setting": setting,
                "config": config,
                "runs": len(done),
                "wall_s": median([r["wall_s"] for r in done]),
                "pairs_per_s": median([size["pairs"] / r["wall_s"] for r in done]),
                "tokens_per_s": median([size["tokens"] / r["wall_s"] for r in done]),
                "peak_rss_mib": median([r["peak_rss_mib"] for r in done]),
                "train_cpu_s": (
                    median([r["train_cpu_s"] for r in done]) if "train_cpu_s" in done[0] else None
                ),
                "load_at_start": [round(r.get("load_at_start", math.nan), 1) for r in done],
                "init_s": median([r["init_s"] for r in done]) if "init_s" in done[0] else None,
                "loss_step1": median([s[0]["loss"] for s in steps]),
                "loss_step2": median([s[1]["loss"] for s in steps]) if len(steps[0]) > 1 else None,
                "logps_chosen_step1": median([s[0]["logps_chosen"] for s in steps]),
                "loss_end": median([s[-1]["loss"] for s in steps]),
                "accuracy": median([r["accuracy"] for r in done]),
                "margins": median([r["margins"] for r in done]),
                "n_steps": len(steps[0]),
                "tokens_match": all(
                    r.get("tokens_seen", size["tokens"]) == size["tokens"] for r in done
                ),
            }
        )
    order = list(SETTINGS), list(CONFIGS)
    rows.sort(key=lambda r: (order[0].index(r["setting"]), order[1].index(r["config"])))
    return rows


def targets(rows: list[dict]) -> list[dict]:
    """Per setting and platform row: its pairs/s over the fastest TRL row's, its peak RSS
    beside that row's, and the step-1 and step-2 losses' differences from TRL's fp32 row."""
    found = []
    for setting in SETTINGS:
        cell = [r for r in rows if r["setting"] == setting]
        trl = [r for r in cell if r["config"].startswith("trl")]
        if not trl:
            continue
        fastest = max(trl, key=lambda r: r["pairs_per_s"])
        same_precision = next((r for r in trl if r["config"] == "trl-fp32"), None)
        for row in cell:
            if not row["config"].startswith("platform"):
                continue
            entry = {
                "setting": setting,
                "config": row["config"],
                "fastest_trl": fastest["config"],
                "speedup": row["pairs_per_s"] / fastest["pairs_per_s"],
                "peak_rss_mib": row["peak_rss_mib"],
                "trl_peak_rss_mib": fastest["peak_rss_mib"],
            }
            if same_precision is not None:
                entry["loss_step1_diff_vs_trl_fp32"] = abs(
                    row["loss_step1"] - same_precision["loss_step1"]
                )
                if row["loss_step2"] is not None and same_precision["loss_step2"] is not None:
                    entry["loss_step2_diff_vs_trl_fp32"] = abs(
                        row["loss_step2"] - same_precision["loss_step2"]
                    )
            found.append(entry)
    return found


def print_table(rows: list[dict], inputs: dict[str, dict]) -> None:
    print(
        f"{'setting':7} {'config':14} {'n':>2} {'wall s':>7} {'pairs/s':>8} {'tokens/s':>9} "
        f"{'RSS MiB':>8} {'loss@1':>8} {'loss@2':>8} {'logp_w@1':>9} {'loss@end':>8} "
        f"{'acc':>5} {'margin':>7} {'CPU s':>6}  load"
    )
    for r in rows:
        step2 = f"{r['loss_step2']:.5f}" if r["loss_step2"] is not None else "-"
        tokens = "" if r["tokens_match"] else "  (token count differs!)"
        print(
            f"{r['setting']:7} {r['config']:14} {r['runs']:>2} {r['wall_s']:>7.1f} "
            f"{r['pairs_per_s']:>8.2f} {r['tokens_per_s']:>9.0f} {r['peak_rss_mib']:>8.0f} "
            f"{r['loss_step1']:>8.5f} {step2:>8} {r['logps_chosen_step1']:>9.3f} "
            f"{r['loss_end']:>8.4f} {r['accuracy']:>5.2f} {r['margins']:>7.4f} "
            f"{r['train_cpu_s'] or math.nan:>6.1f}  {r['load_at_start']}{tokens}"
        )
    for name, size in inputs.items():
        print(
            f"  {name}: {size['pairs']} pairs, {size['tokens']} tokens "
            f"(longest {size['max_tokens']}), {size['parameters'] / 1e6:.2f}M parameters"
        )


def plot(rows: list[dict], path: Path, *, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    configs = [c for c in CONFIGS if any(r["config"] == c for r in rows)]
    figure = Figure(figsize=(9, 4.5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(configs))
    colours = {  # the platform's rows blue, TRL's orange; darker is faster settings
        "platform-before": "#a9bff0",
        "platform": "#4f7be0",
        "platform-fast": "#12318f",
        "platform-fast-fp32": "#2457d6",
        "trl-defaults": "#f3cda5",
        "trl-fp32": "#e8a86f",
        "trl-bf16": "#d6803f",
        "trl-fp32-pre": "#b55a1e",
        "trl-bf16-pre": "#7a3b12",
    }
    for n, config in enumerate(configs):
        values = [
            next((r["pairs_per_s"] for r in rows if r["setting"] == s and r["config"] == config), 0)
            for s in settings
        ]
        axes.bar(
            [i + n * width for i in range(len(settings))],
            values,
            width,
            label=config,
            color=colours[config],
        )
    axes.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(settings))], settings)
    axes.set_ylabel("pairs / s (median)")
    axes.set_title(
        f"DPO on CPU ({threads} torch thread{'s' * (threads > 1)}): this platform beside "
        "TRL's DPOTrainer, one epoch"
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, ncols=2)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument(
        "--configs",
        default="platform-before,platform,platform-fast,trl-defaults,trl-bf16,trl-bf16-pre",
        help=f"of {', '.join(CONFIGS)}",
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition on 64 pairs (16 rankings): a smoke test",
    )
    parser.add_argument("--profile", metavar="SETTING", help="profile the platform's run and stop")
    parser.add_argument(
        "--before-tree", help="a copy of the repository before a change, for platform-before"
    )
    parser.add_argument(
        "--out", help="default: benchmarks/results/dpo_throughput.json (--quick: under /tmp)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(json.loads(args.one))

    settings = args.settings.split(",")
    configs = args.configs.split(",")
    for name in [*settings, *configs]:
        if name not in SETTINGS and name not in CONFIGS:
            parser.error(f"unknown setting or config {name!r}: see --help")
    if args.quick:
        args.reps = 1
        for setting in SETTINGS.values():
            setting.update({"pairs": 64} if "pairs" in setting else {"rankings": 16})
    if not TRL_PYTHON.exists() and any(CONFIGS[c]["side"] == "trl" for c in configs):
        print(
            f"TRL is not installed at {TRL_PYTHON}: its rows are skipped "
            "(`make bench-trl` installs it).",
            flush=True,
        )
        configs = [c for c in configs if CONFIGS[c]["side"] != "trl"]
    if "platform-before" in configs and not args.before_tree:
        configs = [c for c in configs if c != "platform-before"]
    with tempfile.TemporaryDirectory() as work:
        inputs = build_inputs(Path(work), [args.profile] if args.profile else settings)
        if args.profile:
            config = CONFIGS[configs[0] if configs[0].startswith("platform") else "platform"]
            job = {**config, **inputs[args.profile], "threads": args.threads}
            found = profile(job)
            print(f"{args.profile}, {configs[0]}: {found['total_s']:.1f} s")
            for key, seconds in sorted(found["spent_s"].items(), key=lambda kv: -kv[1]):
                print(f"  {key:38} {seconds:7.2f} s  {100 * seconds / found['total_s']:5.1f}%")
            return
        runs: list[dict] = []
        for rep in range(args.reps):
            for setting in settings:
                for config in configs:
                    job = {
                        **CONFIGS[config],
                        **inputs[setting],
                        "tree": args.before_tree if config == "platform-before" else None,
                        "setting": setting,
                        "config": config,
                        "rep": rep,
                        "threads": args.threads,
                    }
                    run = launch(job)
                    runs.append(run)
                    if "error" in run:
                        shown = f"error: {run['error'].strip().splitlines()[-1]}"
                    elif "skipped" in run:
                        shown = f"skipped: {run['skipped']}"
                    else:
                        shown = (
                            f"{run['wall_s']:.1f} s, {inputs[setting]['pairs'] / run['wall_s']:.1f}"
                            f" pairs/s, {run['peak_rss_mib']:.0f} MiB"
                        )
                    print(f"[rep {rep}] {setting} {config}: {shown}", flush=True)
    rows = summarise(runs, inputs)
    print()
    print_table(rows, inputs)
    found = targets(rows)
    for t in found:
        step1 = t.get("loss_step1_diff_vs_trl_fp32")
        step2 = t.get("loss_step2_diff_vs_trl_fp32")
        print(
            f"  {t['setting']} {t['config']}: {t['speedup']:.2f}x {t['fastest_trl']}'s pairs/s, "
            f"peak RSS {t['peak_rss_mib']:.0f} vs {t['trl_peak_rss_mib']:.0f} MiB"
            + (f"; |Δ loss@1| vs trl-fp32 {step1:.1e}" if step1 is not None else "")
            + (f", |Δ loss@2| {step2:.1e}" if step2 is not None else "")
        )
    default = RESULTS if not args.quick else Path(tempfile.gettempdir())
    out = Path(args.out or default / "dpo_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    import torch

    settings_used = {
        "settings": {name: {**SETTINGS[name], **inputs[name]} for name in settings},
        "configs": {name: CONFIGS[name] for name in configs},
        "batch_size": BATCH_SIZE,
        "epochs": EPOCHS,
        "lr": LR,
        "beta": BETA,
        "max_length": MAX_LENGTH,
        "max_grad_norm": MAX_GRAD_NORM,
        "seed": SEED,
        "reps": args.reps,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
    }
    for value in settings_used["settings"].values():
        value.pop("model", None)
        value.pop("data", None)
    for run in runs:
        run.pop("model", None)
        run.pop("data", None)
    out.write_text(
        json.dumps(
            {"settings": settings_used, "summary": rows, "targets": found, "runs": runs}, indent=2
        )
    )
    plot(rows, out.with_suffix(".png"), threads=args.threads)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    if math.isnan(sum(r["loss_end"] for r in rows)):
        sys.exit("a run ended with a NaN loss")


if __name__ == "__main__":
    main()
