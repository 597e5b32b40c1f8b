"""Device and precision: a project's ``device`` and ``dtype`` are validated like every key,
resolve over the worker's TRAINING_DEVICE, and a step that asks for what the worker lacks
fails saying so on its Run row. Rounds with ``dtype: bfloat16`` train and store as usual.
Rounds run in this process (no worker) on this CPU-only machine."""

from __future__ import annotations

import socket

import pytest
import torch

from core.errors import InvalidInput
from labeling.config import project_config, validate_project_config
from tests.ml.lm.lm_fixtures import demo_prompts, tiny_lm_dir
from tests.training.rounds import judge_all
from training import artifacts, services
from training.devices import step_device, step_dtype, worker_device
from training.kinds import text, trajectory
from training.ml.control import checkpoints
from training.ml.lm import lm
from training.models import Policy, RewardModel, Run
from training.runner import run_round_here, run_step_here

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only worker")

TINY = {
    "env_id": "Pendulum-v1",
    "segment_length": 10,
    "algorithm": "reinforce",
    "env_steps_per_round": 400,
    "comparisons_per_round": 6,
    "selection": "random",
    "ensemble_size": 2,
    "render_clips": False,
    "seed": 1,
    "eval_episodes": 2,
    "reinforce": {"learning_rate": 3e-3, "num_envs": 2},
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"device": "CUDA"}, "device"),
        ({"device": 0}, "device"),
        ({"dtype": "float16"}, "dtype"),
        ({"dtype": "bf16"}, "dtype"),
        ({"dtype": None}, "dtype"),
    ],
)
@pytest.mark.parametrize("kind", ["trajectory", "text"])
def test_a_bad_device_or_dtype_is_a_400_naming_the_key(
    make_user, api_client_for, config, key, kind
):
    client = api_client_for(make_user(staff=True))
    response = client.post(
        "/api/projects/",
        {"slug": "hardware", "name": "Hardware", "kind": kind, "config": config},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert f"config.{key}" in str(response.json()["config"]), response.json()


@pytest.mark.parametrize("kind", ["trajectory", "text"])
def test_device_and_dtype_default_to_auto_and_take_cuda_n(kind):
    assert validate_project_config(kind, {})["device"] == "auto"
    assert validate_project_config(kind, {})["dtype"] == "auto"
    config = validate_project_config(kind, {"device": "cuda:1", "dtype": "bfloat16"})
    assert (config["device"], config["dtype"]) == ("cuda:1", "bfloat16")


def test_auto_is_the_cpu_on_a_worker_without_cuda(settings):
    settings.TRAINING_DEVICE = "auto"
    assert step_device(project_config("text", {})) == torch.device("cpu")
    assert step_device(project_config("text", {"device": "cpu"})) == torch.device("cpu")
    assert worker_device() == torch.device("cpu")
    settings.TRAINING_DEVICE = "cpu"
    assert step_device(project_config("trajectory", {})) == torch.device("cpu")


def test_cuda_on_a_worker_without_it_is_an_error_naming_the_key_and_the_worker(settings):
    settings.TRAINING_DEVICE = "auto"
    with pytest.raises(InvalidInput) as asked:
        step_device(project_config("text", {"device": "cuda:0"}))
    assert "config.device is 'cuda:0'" in str(asked.value)
    assert socket.gethostname() in str(asked.value) and "no CUDA device" in str(asked.value)

    settings.TRAINING_DEVICE = "cuda"  # the setting speaks when the config says auto
    with pytest.raises(InvalidInput, match="the TRAINING_DEVICE setting is 'cuda'"):
        step_device(project_config("trajectory", {}))
    assert step_device(project_config("trajectory", {"device": "cpu"})).type == "cpu"


def test_dtype_auto_is_bf16_only_where_the_hardware_has_it():
    cpu = torch.device("cpu")
    expected = "bfloat16" if lm.native_bf16(cpu) else "float32"
    assert step_dtype(project_config("text", {}), cpu) == expected
    assert step_dtype(project_config("text", {"dtype": "float32"}), cpu) == "float32"
    assert step_dtype(project_config("text", {"dtype": "bfloat16"}), cpu) == "bfloat16"


@pytest.mark.django_db
def test_a_step_asking_for_cuda_here_fails_and_its_run_row_says_why(make_project, settings):
    settings.TRAINING_DEVICE = "auto"
    project = make_project(kind="trajectory", config={**TINY, "device": "cuda"})
    round_run = services.start_round(project=project, trigger="test", enqueue=False)

    with pytest.raises(InvalidInput, match=r"config\.device"):
        run_round_here(round_run)

    round_run.refresh_from_db()
    step = round_run.steps.get(kind=Run.Kind.FIT_REWARD_MODEL)
    assert step.status == Run.Status.FAILED and round_run.status == Run.Status.FAILED
    assert "config.device is 'cuda', but worker" in step.error
    assert "no CUDA device" in round_run.error
    assert not Policy.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_the_render_queues_step_runs_on_its_workers_device_whatever_the_config_says(
    make_project, media_root, settings
):
    settings.TRAINING_DEVICE = "auto"
    project = make_project(kind="trajectory", config={**TINY, "device": "cuda"})
    step = run_step_here(services.start_first_comparisons(project=project, trigger="test"))
    assert step.status == Run.Status.SUCCEEDED, step.error
    assert step.metrics["comparisons/created"] == 6


def _round(project) -> Run:
    round_run = run_round_here(services.start_round(project=project, trigger="test", enqueue=False))
    assert round_run.status == "succeeded", round_run.error
    return round_run


@pytest.mark.django_db
def test_a_bf16_dpo_round_on_the_cpu_trains_and_stores_an_fp32_policy(
    make_project, media_root, tmp_path_factory, monkeypatch
):
    config = {
        "model_dir": str(tiny_lm_dir(tmp_path_factory)),
        "prompts": demo_prompts(4),
        "k": 2,
        "max_new_tokens": 8,
        "comparisons_per_round": 4,
        "device": "cpu",
        "dtype": "bfloat16",
    }
    project = make_project(kind="text", config=config, round_size=10_000)
    asked = {}

    def recording_train_dpo(**kwargs):
        asked.update(device=kwargs["device"], dtype=kwargs["dtype"])
        return train_dpo(**kwargs)

    train_dpo = text.train_dpo
    monkeypatch.setattr(text, "train_dpo", recording_train_dpo)

    _round(project)  # samples from the base model
    assert judge_all(project) == 4
    dpo_round = _round(project)

    assert asked == {"device": torch.device("cpu"), "dtype": "bfloat16"}
    metrics = dpo_round.steps.get(kind="improve_policy").metrics
    assert 0.0 <= metrics["rewards/accuracies"] <= 1.0 and "loss" in metrics
    base, _ = lm.load_causal_lm(config["model_dir"])
    with artifacts.local_directory(Policy.objects.get(project=project, version=1).checkpoint) as p:
        trained, _ = lm.load_policy(p)
    weights = dict(trained.named_parameters())
    assert all(w.dtype == torch.float32 for w in weights.values())
    assert any(not torch.equal(w, weights[n]) for n, w in base.named_parameters())


@pytest.mark.django_db
def test_a_trajectory_round_with_bf16_asked_trains_in_fp32_and_stores_cpu_checkpoints(
    make_project, media_root, monkeypatch
):
    project = make_project(kind="trajectory", config={**TINY, "dtype": "bfloat16"})
    devices = []
    train = trajectory.OPTIMIZERS["reinforce"]

    def recording_train(**kwargs):
        devices.append(kwargs["device"])
        return train(**kwargs)

    monkeypatch.setitem(trajectory.OPTIMIZERS, "reinforce", recording_train)

    _round(project)
    assert judge_all(project) == 6
    second = _round(project)

    assert devices == [torch.device("cpu")]
    assert "reward/heldout_accuracy" in second.steps.get(kind="fit_reward_model").metrics
    policy_row = Policy.objects.get(project=project, version=1)
    assert "charts/true_return" in policy_row.metrics
    for row, load in (
        (policy_row, checkpoints.load_policy),
        (RewardModel.objects.get(project=project), checkpoints.load_reward_ensemble),
    ):
        with artifacts.local_copy(row.checkpoint) as path:
            stored = torch.load(path, weights_only=True)["state_dict"]  # no map_location
            model = load(path)
        assert all(t.device.type == "cpu" and t.dtype != torch.bfloat16 for t in stored.values())
        assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


def _setting_in_a_fresh_process(value: str):
    import os
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.TRAINING_DEVICE)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rlhf_platform.test_settings"}
    env["TRAINING_DEVICE"] = value
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_training_device_setting_comes_from_the_environment_and_is_checked():
    assert _setting_in_a_fresh_process("cuda:1").stdout.strip() == "cuda:1"
    assert _setting_in_a_fresh_process("").stdout.strip() == "auto"
    refused = _setting_in_a_fresh_process("gpu")
    assert refused.returncode != 0 and "TRAINING_DEVICE='gpu'" in refused.stderr
