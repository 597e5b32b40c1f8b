"""LoRA through peft (training/ml/lm/lora.py): a fresh adapter is the base, only the
adapter trains, the reference with adapters disabled is exactly the base, an adapter is
stored alone and loads back on its base, and its merge is a plain model."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.ml.lm.lm_fixtures import demo_prompts, load_tiny_lm, tiny_lm_dir
from tests.ml.lm.test_dpo import sentiment_pairs
from training.ml.lm import lora
from training.ml.lm.dpo import train_dpo
from training.ml.lm.lm import save_policy, sequence_logprobs
from training.ml.lm.lm_policy_gradient import train_lm_policy_gradient

SPEC = lora.LoraSpec(r=8, alpha=16.0, target_modules=("c_attn", "c_proj"))


def _logps(model, tokenizer, pairs, index):
    return sequence_logprobs(
        model=model,
        tokenizer=tokenizer,
        prompts=[p for p, *_ in pairs],
        responses=[pair[index] for pair in pairs],
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(policy with a DPO-trained adapter, tokenizer, pairs, its train_dpo metrics), trained
    once for the module: the tests read it and do not train it further."""
    base, tokenizer = load_tiny_lm(tmp_path_factory)
    policy = lora.add_adapter(base, SPEC, seed=0)
    pairs = sentiment_pairs(demo_prompts(24), seed=0)
    metrics = train_dpo(
        policy=policy,
        reference=lora.reference_of(policy),
        tokenizer=tokenizer,
        pairs=pairs,
        epochs=2,
        lr=1e-2,
        seed=0,
    )
    return policy, tokenizer, pairs, metrics


def test_a_fresh_adapter_computes_the_base_and_trains_only_itself(tmp_path_factory):
    base, tokenizer = load_tiny_lm(tmp_path_factory)
    untouched, _ = load_tiny_lm(tmp_path_factory)
    policy = lora.add_adapter(base, lora.LoraSpec(), seed=0)
    pairs = sentiment_pairs(demo_prompts(6), seed=0)

    # B = 0 at the start: the same log-probabilities as the base, to the bit.
    assert torch.equal(_logps(policy, tokenizer, pairs, 1), _logps(untouched, tokenizer, pairs, 1))
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    # peft's default for GPT-2: the fused attention projection.
    assert all(".c_attn." in name for name in trainable)


def test_the_reference_with_adapters_disabled_is_exactly_the_base(trained, tmp_path_factory):
    policy, tokenizer, pairs, _ = trained
    base, _ = load_tiny_lm(tmp_path_factory)

    reference = lora.reference_of(policy)
    reference.to("cpu").eval().requires_grad_(False)  # what a trainer does to its reference
    assert torch.equal(_logps(reference, tokenizer, pairs, 1), _logps(base, tokenizer, pairs, 1))
    assert not torch.equal(_logps(policy, tokenizer, pairs, 1), _logps(base, tokenizer, pairs, 1))
    # The reference shares the policy's weights and left its adapter trainable.
    assert any(p.requires_grad for p in policy.parameters())
    assert list(reference.parameters()) == []


def _base_weights_unchanged(policy, before: dict) -> bool:
    """Whether the base under the adapter holds the weights ``before`` (a state_dict)."""
    state = policy.get_base_model().state_dict()

    def adapted(key: str) -> str:  # an adapted layer keeps its weights under base_layer
        head, last = key.rsplit(".", 1)
        return key if key in state else f"{head}.base_layer.{last}"

    return all(torch.equal(state[adapted(key)], value) for key, value in before.items())


def _adapter_moved(policy) -> bool:
    """B starts at 0: any non-zero lora_B means the adapter trained."""
    return any(p.abs().sum() > 0 for name, p in policy.named_parameters() if "lora_B" in name)


def test_lora_dpo_raises_the_margin_and_leaves_the_base_weights_as_they_were(
    trained, tmp_path_factory
):
    before = load_tiny_lm(tmp_path_factory)[0].state_dict()
    policy, _, _, metrics = trained

    assert metrics["rewards/margins"] > 0.3
    # 21 or 22 of the 24 pairs, by the process's history: oneDNN's kernels round by
    # memory alignment, and in a full test run this fixed-seed fit lands on 21
    assert metrics["rewards/accuracies"] >= 0.85
    assert metrics["loss"] < math.log(2) - 0.1
    assert _adapter_moved(policy) and _base_weights_unchanged(policy, before)


def test_lora_policy_gradient_trains_the_adapter_against_the_base(tmp_path_factory):
    base, tokenizer = load_tiny_lm(tmp_path_factory)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    policy = lora.add_adapter(base, SPEC, seed=0)
    metrics = train_lm_policy_gradient(
        algorithm="reinforce",
        policy=policy,
        reference=lora.reference_of(policy),
        tokenizer=tokenizer,
        reward_fn=lambda prompts, responses: torch.tensor([float(len(r)) for r in responses]),
        prompts=demo_prompts(4),
        k=2,
        iterations=2,
        prompts_per_iteration=2,
        max_new_tokens=6,
        lr=1e-2,
        seed=0,
    )
    # The second iteration's KL to the base sees the first update; the base stayed as it was.
    assert math.isfinite(metrics["kl"]) and metrics["kl"] != 0.0
    assert _adapter_moved(policy) and _base_weights_unchanged(policy, before)


def test_a_saved_adapter_is_only_the_adapter_and_loads_back_on_its_base(
    trained, tmp_path_factory, tmp_path
):
    policy, tokenizer, pairs, _ = trained
    save_policy(policy, tokenizer, tmp_path / "v1")

    names = {path.name for path in (tmp_path / "v1").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin", "config.json"}
    assert lora.is_adapter_directory(tmp_path / "v1")
    assert not lora.is_adapter_directory(tiny_lm_dir(tmp_path_factory))
    adapter_bytes = (tmp_path / "v1" / "adapter_model.safetensors").stat().st_size
    base_bytes = (tiny_lm_dir(tmp_path_factory) / "model.safetensors").stat().st_size
    assert adapter_bytes < base_bytes / 10

    loaded, _ = lora.load_policy(tmp_path / "v1", trainable=True)  # the base the adapter names
    assert lora.has_adapter(loaded)
    assert any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(
        _logps(loaded, tokenizer, pairs, 1), _logps(policy, tokenizer, pairs, 1)
    )
    frozen, _ = lora.load_policy(tmp_path / "v1", base_dir=tiny_lm_dir(tmp_path_factory))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_merged_weights_load_with_plain_transformers_and_give_base_plus_adapter_logits(
    trained, tmp_path
):
    policy, tokenizer, _, _ = trained
    save_policy(policy, tokenizer, tmp_path / "adapter")
    merged, _ = lora.load_policy(tmp_path / "adapter", merge=True)
    assert not lora.has_adapter(merged)
    save_policy(merged, tokenizer, tmp_path / "merged")

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True)
    input_ids = tokenizer(["Question: How was your day?\nAnswer: lovely"], return_tensors="pt")
    with torch.no_grad():
        expected = policy(**input_ids).logits
        got = plain.eval()(**input_ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_target_modules_the_model_lacks_say_which_it_has(tmp_path_factory):
    base, _ = load_tiny_lm(tmp_path_factory)
    with pytest.raises(ValueError, match="c_attn"):
        lora.add_adapter(base, lora.LoraSpec(target_modules=("q_proj",)), seed=0)
