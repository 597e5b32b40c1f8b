"""A small GPT-2-style language model trained from scratch on the demo corpus, so a text
project has a policy to start from without any download.

Two steps, both saved with save_pretrained into one directory (training.ml.lm.lm.load_causal_lm
reads it back; so does any Hugging Face tool):
1. a byte-level BPE tokenizer (GPT-2's scheme: bytes, then learned merges) trained on the
   corpus, wrapped as a PreTrainedTokenizerFast with <|endoftext|> as bos and eos,
   <|pad|> as pad, and DEMO_CHAT_TEMPLATE as its chat template;
2. a GPT2LMHeadModel trained by next-token prediction on the corpus. Examples are the
   corpus's blank-line-separated "Question: ...\\nAnswer: ..." blocks, each followed by
   eos so the model learns to stop; they are packed into one token stream, and each step
   takes batch_size random windows of n_positions tokens (nanoGPT's loader). AdamW with a
   linear warm-up then cosine decay of the learning rate; no dropout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from training.ml.seeding import torch_seeded

DEMO_DIR = Path(__file__).resolve().parents[3] / "demo"
DEMO_CORPUS = DEMO_DIR / "corpus.txt"  # written by demo/make_corpus.py
DEMO_PROMPTS = DEMO_DIR / "prompts.txt"

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
# The demo model's chat template (Jinja, as Hugging Face tokenizers keep it): a conversation
# in the corpus's own words, so the model reads it as the examples it was trained on. A user
# turn is "Question: ...\n", an assistant turn "Answer: ..." closed by eos (as the packed
# corpus closes each example), a system turn "System: ...\n"; the generation prompt is the
# assistant cue "Answer:". No bos: the corpus has none.
DEMO_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}System: {{ m['content'] | trim }}\n"
    "{% elif m['role'] == 'user' %}Question: {{ m['content'] | trim }}\n"
    "{% else %}Answer: {{ m['content'] | trim }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Answer:{% endif %}"
)


@dataclass(frozen=True)
class DemoLMConfig:
    """Defaults: 0.93M parameters, 500 steps of 32 × 64 tokens (about 18 passes over the
    58k-token demo corpus): about 1 minute on two idle CPU cores (several on a busy
    machine), 7 s on one H100."""

    vocab_size: int = 1024
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    n_positions: int = 64  # the training window, and the longest prompt + response
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0


def read_examples(corpus_path: str | Path) -> list[str]:
    """The corpus's blank-line-separated examples, stripped."""
    text = Path(corpus_path).read_text(encoding="utf-8")
    return [block.strip() for block in text.split("\n\n") if block.strip()]


def read_prompts(path: str | Path = DEMO_PROMPTS) -> list[str]:
    """Prompts separated by blank lines (each "Question: ...\\nAnswer:"), trailing space cut."""
    return read_examples(path)


def train_tokenizer(*, examples: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE on the examples; bos = eos = <|endoftext|>, pad = <|pad|>, and
    DEMO_CHAT_TEMPLATE for conversations."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    tokenizer.train_from_iterator(examples, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
    )
    wrapped.chat_template = DEMO_CHAT_TEMPLATE  # saved with it by save_pretrained
    return wrapped


def _learning_rate(step: int, *, config: DemoLMConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth (nanoGPT's schedule)."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.learning_rate / 10
    return floor + 0.5 * (config.learning_rate - floor) * (1 + math.cos(math.pi * progress))


def build_demo_lm(
    *,
    corpus_path: str | Path = DEMO_CORPUS,
    out_dir: str | Path,
    vocab_size: int = DemoLMConfig.vocab_size,
    n_layer: int = DemoLMConfig.n_layer,
    n_head: int = DemoLMConfig.n_head,
    n_embd: int = DemoLMConfig.n_embd,
    n_positions: int = DemoLMConfig.n_positions,
    steps: int = DemoLMConfig.steps,
    batch_size: int = DemoLMConfig.batch_size,
    learning_rate: float = DemoLMConfig.learning_rate,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Train the tokenizer and the model on corpus_path; save both to out_dir; return it.

    Also writes demo_lm.json there: the config and the mean training loss of the last
    tenth of the steps."""
    config = DemoLMConfig(
        vocab_size=vocab_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        n_positions=n_positions,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=min(DemoLMConfig.warmup_steps, max(1, steps // 10)),
    )
    examples = read_examples(corpus_path)
    if not examples:
        raise ValueError(f"No examples in {corpus_path}: write text separated by blank lines.")
    tokenizer = train_tokenizer(examples=examples, vocab_size=config.vocab_size)

    stream = []  # the packed corpus: example, eos, example, eos, ...
    for ids in tokenizer(examples, add_special_tokens=False)["input_ids"]:
        stream += [*ids, tokenizer.eos_token_id]
    stream = torch.tensor(stream, dtype=torch.long)  # (L,)
    if len(stream) <= config.n_positions:
        raise ValueError(
            f"The corpus is {len(stream)} tokens, not more than n_positions={config.n_positions}."
        )

    model_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch_seeded(seed, device=device):
        model = GPT2LMHeadModel(model_config).to(device)
        # GPT2LMHeadModel's name matches no loss in transformers' table; naming it spares
        # the "loss_type=None ... unrecognized" warning on the first step.
        model.loss_type = "ForCausalLM"
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        generator = torch.Generator().manual_seed(seed)
        offsets = torch.arange(config.n_positions)  # (T,)
        losses = []
        model.train()
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, config=config)
            starts = torch.randint(
                len(stream) - config.n_positions, (config.batch_size,), generator=generator
            )  # (B,)
            windows = stream[starts[:, None] + offsets].to(device)  # (B, T)
            # next-token cross-entropy; the model shifts the labels itself
            loss = model(input_ids=windows, labels=windows).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
            if progress is not None and (step + 1) % 10 == 0:
                progress((step + 1) / config.steps)
    model.eval()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tail = losses[-max(1, len(losses) // 10) :]
    summary = {"config": asdict(config), "seed": seed, "final_train_loss": sum(tail) / len(tail)}
    (out_dir / "demo_lm.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if progress is not None:
        progress(1.0)
    return out_dir
