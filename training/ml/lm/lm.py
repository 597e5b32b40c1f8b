"""A causal language model as a policy π(y|x): load, sample, score, save.

A prompt x and a response y are tokenized apart and concatenated, [x; y; eos], so which
tokens belong to the response is exact (a joint tokenization may merge across the seam).
The response's log-probability is the chain rule over its tokens only,
    log π(y|x) = Σ_t log π(y_t | x, y_<t)                (InstructGPT notation, §3.5)
with the prompt and the padding masked out. The eos closes the response, so π(y|x) is the
probability of saying y and then stopping.

Batches are right-padded for scoring (positions 0..T−1 are then the real positions) and
left-padded for generation (so every prompt ends where generation starts).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training.ml.lm.generation import generate_k_per_prompt
from training.ml.seeding import torch_seeded


def load_causal_lm(
    path: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A Hugging Face causal LM and its tokenizer from a local directory (never the hub).

    The model comes back in eval mode (no dropout). A tokenizer without a pad token gets
    its eos as pad: every mask here comes from attention masks, never from the pad id."""
    path = Path(path)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.to(device).eval(), tokenizer


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of the model directory at path, as load_causal_lm gives it (eos as
    pad when it has no pad token), without loading the model."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"No model at {path}: expected a save_pretrained directory with config.json "
            "(build one with training.ml.lm.demo_lm.build_demo_lm)."
        )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer at {path} has no eos token; responses could not end.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def save_policy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> Path:
    """Save with save_pretrained, so any Hugging Face tool can load the directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load_policy(
    path: str | Path, *, device: torch.device | str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The counterpart of save_policy for a whole model: (model in eval mode, tokenizer).
    lora.load_policy reads a LoRA adapter directory too."""
    return load_causal_lm(path, device=device)


def frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy that never trains: the reference π_ref of a round (eval mode, no gradients)."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


FORWARD_DTYPES = ("auto", "float32", "bfloat16")


def native_bf16(device: torch.device | str) -> bool:
    """Whether the device multiplies bf16 matrices in hardware: a CUDA GPU that supports
    bf16, or a CPU with AVX512-BF16 or AMX (elsewhere bf16 is emulated, slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def forward_dtype(dtype: str, device: torch.device | str) -> torch.dtype:
    """The dtype that forward passes compute in: "float32", "bfloat16" (autocast: matrix
    products in bf16; weights, gradients and optimizer state stay fp32), or "auto": bf16
    where the device has it in hardware (native_bf16), else fp32. On the CPU the DPO
    benchmark measured bf16 1.6-1.9x faster than fp32 with the same losses to ~3e-4
    (benchmarks/dpo_throughput.py)."""
    if dtype not in FORWARD_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(FORWARD_DTYPES)}, got {dtype!r}.")
    if dtype == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return torch.bfloat16 if dtype == "bfloat16" else torch.float32


def autocast_to(dtype: torch.dtype, device: torch.device | str) -> AbstractContextManager:
    """torch.autocast to dtype on the device's type; for fp32 nothing at all (not an
    autocast(enabled=False), which would switch off a caller's own autocast)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def unique_sequences(
    prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
) -> tuple[list[Sequence[int]], list[Sequence[int]], list[int]]:
    """The distinct (prompt, response) rows, in order of first appearance, and for each row
    given its index among them: score the distinct rows, then take logps[index]. A K-ranking's
    C(K, 2) pairs name only its K responses."""
    seen: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    prompts, responses, index = [], [], []
    for prompt, response in zip(prompt_ids, response_ids, strict=True):
        key = (tuple(prompt), tuple(response))
        if key not in seen:
            seen[key] = len(prompts)
            prompts.append(prompt)
            responses.append(response)
        index.append(seen[key])
    return prompts, responses, index


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt, with the tokenizer's own special tokens (a bos for models
    that use one). An empty prompt becomes [bos] (or [eos]): the first response token
    needs something to be predicted from."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return [ids if ids else [start] for ids in encoded]


def encode_responses(
    tokenizer: PreTrainedTokenizerBase, responses: Sequence[str], *, add_eos: bool = True
) -> list[list[int]]:
    """Token ids of each response, without special tokens, eos appended when add_eos."""
    encoded = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if add_eos else []
    return [ids + eos for ids in encoded]


@dataclass(frozen=True)
class PromptResponseBatch:
    """[prompt; response] rows, right-padded."""

    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T) 1 on real tokens
    response_mask: Tensor  # (B, T) 1 on the response's tokens, the ones scored


def collate_prompt_response(
    *,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_token_id: int,
    max_length: int | None = None,
    device: torch.device | str = "cpu",
) -> PromptResponseBatch:
    """Concatenate and right-pad. Over max_length, the prompt loses tokens from its start
    (keeping at least one), then the response from its end."""
    if len(prompt_ids) != len(response_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(response_ids)} responses.")
    rows, n_prompt = [], []
    for prompt, response in zip(prompt_ids, response_ids, strict=True):
        prompt, response = list(prompt), list(response)
        if max_length is not None and len(prompt) + len(response) > max_length:
            keep_prompt = max(1, max_length - len(response))
            prompt = prompt[-keep_prompt:]
            response = response[: max_length - len(prompt)]
        rows.append(prompt + response)
        n_prompt.append(len(prompt))
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    response_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, start) in enumerate(zip(rows, n_prompt, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
        response_mask[i, start : len(row)] = 1
    return PromptResponseBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        response_mask=response_mask.to(device),
    )


def max_positions(model: PreTrainedModel) -> int | None:
    """The longest sequence the model's position embeddings allow, when it says."""
    config = model.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def tokenize_prompt_response(
    *,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    add_eos: bool = True,
    max_length: int | None = None,
    device: torch.device | str = "cpu",
) -> PromptResponseBatch:
    """Tokenize prompts and responses apart and collate them, with the response mask."""
    return collate_prompt_response(
        prompt_ids=encode_prompts(tokenizer, prompts),
        response_ids=encode_responses(tokenizer, responses, add_eos=add_eos),
        pad_token_id=tokenizer.pad_token_id,
        max_length=max_length,
        device=device,
    )


def token_logprobs(
    *,
    model: PreTrainedModel,
    batch: PromptResponseBatch,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """log π(token_t | tokens_<t) at every scored (response) position, 0 elsewhere.

    Returns (B, T−1): entry t scores token t+1, predicted from the logits at t. With a
    temperature τ the policy is softmax(logits/τ), the distribution sampling used. dtype:
    the forward pass's (autocast_to); the log-softmax is fp32 whatever it is."""
    with autocast_to(dtype, batch.input_ids.device):
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits  # (B, T, V)
    logits = logits[:, :-1].float() / temperature  # (B, T−1, V)
    targets = batch.input_ids[:, 1:]  # (B, T−1)
    logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logps * batch.response_mask[:, 1:]  # (B, T−1)


def response_logprobs(
    *,
    model: PreTrainedModel,
    batch: PromptResponseBatch,
    temperature: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over response tokens: (B,), differentiable."""
    logps = token_logprobs(model=model, batch=batch, temperature=temperature, dtype=dtype)
    return logps.sum(dim=-1)


@torch.no_grad()
def sequence_logprobs(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    add_eos: bool = True,
) -> Tensor:
    """log π(y_i|x_i) for N (prompt, response) texts: (N,), without gradient (for training,
    call response_logprobs on a batch)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenize_prompt_response(
            tokenizer=tokenizer,
            prompts=prompts[start : start + batch_size],
            responses=responses[start : start + batch_size],
            add_eos=add_eos,
            max_length=max_positions(model),
            device=device,
        )
        chunks.append(response_logprobs(model=model, batch=batch))
    return torch.cat(chunks) if chunks else torch.zeros(0, device=device)


@torch.no_grad()
def generate_response_ids(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    k: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    progress: Callable[[float], None] | None = None,
) -> list[list[list[int]]]:
    """K sampled responses per prompt as token ids (P, K, ·), each cut after its first eos
    (kept) and without padding. temperature 0 decodes greedily. The same seed and
    batch_size give the same samples. progress(fraction of the prompts) after each batch.
    One generate per batch of prompts, each prompt prefilled once for its K (generation.py)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    config = GenerationConfig(
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_p=top_p if temperature > 0 else None,
        top_k=0 if temperature > 0 else None,  # no top-k cut: sample from softmax(logits/τ)
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    limit = max_positions(model)
    encoded = encode_prompts(tokenizer, prompts)
    if limit is not None:
        encoded = [ids[-max(1, limit - max_new_tokens) :] for ids in encoded]
    samples: list[list[list[int]]] = []
    with torch_seeded(seed, device=device):
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, ids in enumerate(chunk):  # left padding
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[i, width - len(ids) :] = 1
            # each prompt prefilled once, its KV cache shared by its K responses
            output = generate_k_per_prompt(
                model=model,
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                k=k,
                generation_config=config,
            )  # (len(chunk)·K, width + new)
            generated = output[:, width:].tolist()
            for i in range(len(chunk)):
                per_prompt = []
                for ids in generated[i * k : (i + 1) * k]:
                    if eos in ids:
                        ids = ids[: ids.index(eos) + 1]
                    per_prompt.append(ids)
                samples.append(per_prompt)
            if progress is not None:
                progress(len(samples) / len(encoded))
    return samples


def decode_responses(
    tokenizer: PreTrainedTokenizerBase, response_ids: Sequence[Sequence[int]]
) -> list[str]:
    return tokenizer.batch_decode(list(response_ids), skip_special_tokens=True)


def sample_responses(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    k: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[float], None] | None = None,
) -> list[list[str]]:
    """K sampled response texts per prompt (P lists of K), reproducible from seed;
    progress(fraction of the prompts) as batches finish."""
    ids = generate_response_ids(
        model=model,
        tokenizer=tokenizer,
        prompts=prompts,
        k=k,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        device=device,
        progress=progress,
    )
    return [decode_responses(tokenizer, per_prompt) for per_prompt in ids]
