"""LoRA on a text project (config.lora): a DPO round on a real worker stores only the
adapter and samples from it; a bad lora value is a 400 naming the key; the export gives
merged weights or the adapter, as asked."""

from __future__ import annotations

import io
import zipfile

import pytest

from labeling.models import Item
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from tests.training.rounds import judge_all, round_via_api
from training import artifacts
from training.models import Policy, Run

LORA = {"r": 8, "alpha": 16, "target_modules": ["c_attn", "c_proj"]}


def _checkpoint_files(policy: Policy) -> dict[str, int]:
    """{name: uncompressed bytes} of a policy's stored zip."""
    with policy.checkpoint.open("rb") as f, zipfile.ZipFile(f) as archive:
        return {info.filename: info.file_size for info in archive.infolist()}


@pytest.mark.worker
def test_a_lora_dpo_round_on_a_worker_stores_only_adapter_weights_and_its_policy_samples(
    celery_worker_process, tmp_path_factory, make_user, make_project, api_client_for
):
    model_dir = tiny_lm_dir(tmp_path_factory)
    config = {
        "model_dir": str(model_dir),
        "prompts": demo_prompts(6),
        "k": 3,
        "max_new_tokens": 12,
        "algorithm": "dpo",
        "comparisons_per_round": 6,
        "seed": 1,
        "lora": LORA,
    }
    project = make_project(kind="text", config=config, round_size=10_000)
    client = api_client_for(make_user(staff=True))
    base_bytes = (model_dir / "model.safetensors").stat().st_size

    round_via_api(client, project)  # round 1: samples from the base; v0 is a fresh adapter
    assert "adapter_config.json" in _checkpoint_files(Policy.objects.get(project=project))
    assert judge_all(project) == 6

    dpo_round = round_via_api(client, project)  # round 2: LoRA DPO, then samples from v1
    metrics = dpo_round.steps.get(kind="improve_policy").metrics
    assert metrics["rewards/margins"] > 0 and "teacher/mean_score" in metrics
    v1 = Policy.objects.get(project=project, version=1)
    files = _checkpoint_files(v1)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(files)
    assert not set(files) & {"model.safetensors", "pytorch_model.bin", "config.json"}
    assert sum(size for name, size in files.items() if "safetensors" in name) < base_bytes / 10
    fresh = Item.objects.filter(project=project, data__round=2)
    assert fresh.count() == 18 and all(item.data["policy_version"] == 1 for item in fresh)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lora", "key"),
    [
        ({"r": 0}, "lora.r"),
        ({"r": 8.5}, "lora.r"),
        ({"alpha": 0}, "lora.alpha"),
        ({"dropout": 1.0}, "lora.dropout"),
        ({"target_modules": "c_attn"}, "lora.target_modules"),
        ({"target_modules": []}, "lora.target_modules"),
        ({"target_modules": ["c_attn", 3]}, "lora.target_modules"),
        ({"rank": 8}, "lora.rank"),
        (8, "lora"),
    ],
)
def test_a_bad_lora_value_is_a_400_naming_the_key(make_user, api_client_for, lora, key):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "adapted", "name": "Adapted", "kind": "text", "config": {"lora": lora}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert key in response.json()["config"], response.json()


@pytest.fixture
def lora_policy(tmp_path_factory, make_project):
    """A LoRA text project, and its policy v1: an adapter with non-zero B (so merging it
    changes the base), stored as a round stores it; with the in-memory PeftModel."""
    import torch

    from training.ml.lm import lm, lora

    config = {"model_dir": str(tiny_lm_dir(tmp_path_factory)), "prompts": demo_prompts(2)}
    project = make_project("adapted", kind="text", config={**config, "lora": LORA})
    base, tokenizer = lm.load_causal_lm(config["model_dir"])
    policy = lora.add_adapter(base, lora.LoraSpec(r=8, target_modules=("c_attn",)), seed=0)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    name = artifacts.store_directory(
        project, "policy", lambda directory: lm.save_policy(policy, tokenizer, directory)
    )
    row = Policy.objects.create(project=project, version=1, checkpoint=name)
    return row, policy, tokenizer


def _logits(model, tokenizer):
    import torch

    inputs = tokenizer(["Question: How was your day?\nAnswer: lovely"], return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**inputs).logits


def _unzip(content: bytes, out):
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        archive.extractall(out)
    return out


def test_the_export_gives_merged_weights_that_plain_transformers_loads_or_the_adapter(
    db, tmp_path, media_root, lora_policy, make_user, client
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.ml.lm import lm

    row, policy, tokenizer = lora_policy
    expected = _logits(policy, tokenizer)
    client.force_login(make_user(staff=True))

    merged = client.get(f"/api/policies/{row.pk}/export/")  # merged: the default
    assert merged.status_code == 200
    assert merged["Content-Disposition"].endswith('adapted-policy-v1.zip"')
    merged_dir = _unzip(b"".join(merged.streaming_content), tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file()
    plain = AutoModelForCausalLM.from_pretrained(merged_dir, local_files_only=True)
    torch.testing.assert_close(_logits(plain, tokenizer), expected, atol=1e-5, rtol=1e-5)
    base, _ = lm.load_causal_lm(row.project.config["model_dir"])
    assert not torch.allclose(_logits(base, tokenizer), expected)  # the merge changed the base

    adapter = client.get(f"/api/policies/{row.pk}/export/?weights=adapter")
    assert adapter.status_code == 200
    assert adapter["Content-Disposition"].endswith('adapted-policy-v1-adapter.zip"')
    adapter_dir = _unzip(b"".join(adapter.streaming_content), tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(base, adapter_dir)
    torch.testing.assert_close(_logits(loaded, tokenizer), expected, atol=1e-6, rtol=1e-6)

    bad = client.get(f"/api/policies/{row.pk}/export/?weights=fp16")
    assert bad.status_code == 400 and "weights" in bad.json()["detail"]


def test_export_policy_writes_merged_weights_or_the_adapter_as_asked(
    db, tmp_path, media_root, lora_policy
):
    import torch
    from django.core.management import call_command

    from training.ml.lm import lora

    _, policy, tokenizer = lora_policy
    call_command("export_policy", project="adapted", out=tmp_path / "merged")
    assert (tmp_path / "merged" / "config.json").is_file()
    assert not lora.is_adapter_directory(tmp_path / "merged")
    call_command("export_policy", project="adapted", out=tmp_path / "adapter", weights="adapter")
    assert lora.is_adapter_directory(tmp_path / "adapter")
    merged, _ = lora.load_policy(tmp_path / "merged")
    torch.testing.assert_close(_logits(merged, tokenizer), _logits(policy, tokenizer))


def test_a_policy_trained_in_full_has_no_adapter_to_export(
    db, tmp_path_factory, media_root, make_project, make_user, client
):
    from django.core.management import CommandError, call_command

    from training.ml.lm import lm

    config = {"model_dir": str(tiny_lm_dir(tmp_path_factory)), "prompts": demo_prompts(2)}
    project = make_project("whole", kind="text", config=config)
    model, tokenizer = lm.load_causal_lm(config["model_dir"])
    name = artifacts.store_directory(
        project, "policy", lambda directory: lm.save_policy(model, tokenizer, directory)
    )
    row = Policy.objects.create(project=project, version=0, checkpoint=name)
    client.force_login(make_user(staff=True))

    response = client.get(f"/api/policies/{row.pk}/export/?weights=adapter")
    assert response.status_code == 400
    assert "trained in full" in response.json()["detail"]
    whole = client.get(f"/api/policies/{row.pk}/export/?weights=merged")
    assert whole.status_code == 200 and whole["Content-Disposition"].endswith(
        'whole-policy-v0.zip"'
    )
    with pytest.raises(CommandError, match="trained in full"):
        call_command(
            "export_policy", project="whole", out=tmp_path_factory.mktemp("x"), weights="adapter"
        )


@pytest.mark.django_db
def test_a_lora_reinforce_round_fits_its_reward_model_on_the_base_and_trains_the_adapter(
    tmp_path_factory, media_root, make_project
):
    from training import services
    from training.ml.lm import lora
    from training.models import RewardModel
    from training.runner import run_round_here

    def round_of(project) -> Run:
        run = run_round_here(services.start_round(project=project, trigger="test", enqueue=False))
        assert run.status == "succeeded", run.error
        return run

    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(6),
        "k": 2,
        "max_new_tokens": 8,
        "algorithm": "reinforce",
        "comparisons_per_round": 6,
        "lora": LORA,
    }
    project = make_project("reinforced", kind="text", config=config, round_size=10_000)
    round_of(project)
    assert judge_all(project) == 6
    pg_round = round_of(project)

    assert RewardModel.objects.filter(project=project).count() == 1
    assert "kl" in pg_round.steps.get(kind="improve_policy").metrics
    v1 = Policy.objects.get(project=project, version=1)
    assert "adapter_model.safetensors" in _checkpoint_files(v1)
    with artifacts.local_directory(v1.checkpoint) as path:
        assert lora.is_adapter_directory(path)
