"""Reward ensembles fitted on synthetic preferences, normalisation and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml.bradley_terry import PREFERENCE_TARGET
from training.ml.control.checkpoints import load_policy, load_reward_ensemble, save_checkpoint
from training.ml.control.policies import policy_for_env
from training.ml.control.reward_models import (
    NormalizedReward,
    RunningNorm,
    fit_reward_ensemble,
    reward_ensemble_for_env,
    segments_to_tensors,
)
from training.ml.control.rollouts import Segment, collect_segments
from training.ml.control.selection import random_pairs
from training.ml.teachers import make_teacher


def judged_pairs(segments, n_pairs, *, seed, teacher=None):
    """Random pairs of ``segments`` labelled by a (default: perfectly rational) teacher."""
    rng = np.random.default_rng(seed)
    teacher = teacher or make_teacher("rational")
    pairs = []
    for i, j in random_pairs(len(segments), n_pairs, rng):
        choice = teacher.judge(segments[i], segments[j], rng)
        pairs.append((segments[i], segments[j], PREFERENCE_TARGET[choice]))
    return pairs


@pytest.fixture(scope="module")
def pendulum_segments():
    """Random-policy segments of Pendulum-v1, whose true reward varies a lot between them."""
    return collect_segments(
        env_id="Pendulum-v1", policy=None, n_segments=140, segment_length=20, seed=0
    )


@pytest.fixture(scope="module")
def fitted_pendulum(pendulum_segments):
    """An ensemble fitted on pairs among the first 100 segments; the last 40 stay unseen."""
    ensemble = reward_ensemble_for_env("Pendulum-v1", seed=0)
    progress: list[float] = []
    metrics = fit_reward_ensemble(
        ensemble=ensemble,
        pairs=judged_pairs(pendulum_segments[:100], 400, seed=0),
        epochs=30,
        lr=3e-3,
        batch_size=64,
        holdout_fraction=0.2,
        seed=0,
        progress=progress.append,
    )
    return ensemble, metrics, progress


def test_running_norm_matches_numpy_over_several_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[3.0, -2.0], scale=[2.0, 0.5], size=(1000, 2))
    norm = RunningNorm(2)
    for batch in np.array_split(data, 7):
        norm.update(torch.as_tensor(batch))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-9)
    normalised = norm(torch.as_tensor(data, dtype=torch.float32))
    np.testing.assert_allclose(normalised.mean(0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)


def test_running_norm_with_max_count_follows_recent_data():
    norm = RunningNorm((), max_count=100)
    norm.update(torch.zeros(1000))
    norm.update(torch.full((1000,), 10.0))
    assert norm.count.item() == 100
    assert norm.mean.item() > 9.0  # an uncapped mean would be 5


def test_ensemble_ranks_heldout_pairs_right(fitted_pendulum):
    _, metrics, progress = fitted_pendulum
    assert metrics.n_train == 320 and metrics.n_heldout == 80
    assert metrics.heldout_accuracy >= 0.9
    assert metrics.heldout_loss < 0.35
    assert progress[-1] == 1.0 and len(progress) == 30


def test_ensemble_ranks_pairs_of_unseen_segments_right(fitted_pendulum, pendulum_segments):
    ensemble, _, _ = fitted_pendulum
    unseen = pendulum_segments[100:]
    obs, actions = segments_to_tensors(unseen, device="cpu")  # (40, 20, 3), (40, 20, 1)
    with torch.no_grad():
        returns = ensemble.segment_returns(obs, actions)  # (E, N)
    assert returns.shape == (3, 40)
    predicted = returns.mean(0).numpy()
    true = np.array([s.true_return for s in unseen])
    right = [
        (predicted[i] > predicted[j]) == (true[i] > true[j])
        for i in range(len(unseen))
        for j in range(i + 1, len(unseen))
    ]
    assert np.mean(right) >= 0.9


def test_members_are_fitted_on_different_bootstrap_samples(fitted_pendulum, pendulum_segments):
    ensemble, _, _ = fitted_pendulum
    obs, actions = segments_to_tensors(pendulum_segments[:10], device="cpu")
    with torch.no_grad():
        returns = ensemble.segment_returns(obs, actions)  # (E, N)
    assert not torch.allclose(returns[0], returns[1])
    assert not torch.allclose(returns[1], returns[2])


def test_normalised_reward_has_zero_mean_unit_std_on_the_training_data(
    fitted_pendulum, pendulum_segments
):
    ensemble, _, _ = fitted_pendulum
    obs, actions = segments_to_tensors(pendulum_segments[:100], device="cpu")
    reward_fn = NormalizedReward(ensemble, update_stats=False)
    rewards = reward_fn(obs.flatten(0, 1), actions.flatten(0, 1))  # (N,)
    assert rewards.shape == (100 * 20,)
    assert abs(rewards.mean().item()) < 0.3
    assert 0.7 < rewards.std().item() < 1.3


def test_fit_handles_discrete_actions_and_ties_and_reports_none_without_holdout():
    segments = collect_segments(
        env_id="CartPole-v1", policy=None, n_segments=12, segment_length=5, seed=1
    )
    # CartPole's reward is 1 per step: every pair is a tie
    pairs = judged_pairs(segments, 20, seed=1, teacher=make_teacher("rational"))
    assert {p for _, _, p in pairs} == {0.5}
    ensemble = reward_ensemble_for_env("CartPole-v1", seed=0)
    metrics = fit_reward_ensemble(ensemble=ensemble, pairs=pairs, epochs=2, seed=0)
    assert metrics.heldout_accuracy is None  # no non-tie pair held out
    assert metrics.heldout_loss == pytest.approx(np.log(2), abs=0.1)
    metrics = fit_reward_ensemble(
        ensemble=ensemble, pairs=pairs, epochs=1, holdout_fraction=0.0, seed=0
    )
    assert metrics.n_heldout == 0 and metrics.heldout_loss is None


def test_fit_rejects_bad_labels_and_mixed_lengths():
    short = Segment(np.zeros((3, 3), np.float32), np.zeros((3, 1), np.float32), np.zeros(3))
    long = Segment(np.zeros((4, 3), np.float32), np.zeros((4, 1), np.float32), np.zeros(4))
    ensemble = reward_ensemble_for_env("Pendulum-v1", seed=0)
    with pytest.raises(ValueError, match="p_a must be"):
        fit_reward_ensemble(ensemble=ensemble, pairs=[(short, short, 0.7)], seed=0)
    with pytest.raises(ValueError, match="one length"):
        fit_reward_ensemble(ensemble=ensemble, pairs=[(short, long, 1.0)], seed=0)
    with pytest.raises(ValueError, match="No judged pairs"):
        fit_reward_ensemble(ensemble=ensemble, pairs=[], seed=0)


def test_checkpoints_reload_elsewhere_with_identical_outputs(fitted_pendulum, tmp_path):
    ensemble, _, _ = fitted_pendulum
    policy = policy_for_env("Pendulum-v1", seed=3)
    ensemble_path = save_checkpoint(ensemble, tmp_path / "models" / "reward.pt")
    policy_path = save_checkpoint(policy, tmp_path / "models" / "policy.pt")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["policy.pt", "reward.pt"]

    reloaded = load_reward_ensemble(ensemble_path)
    reloaded_policy = load_policy(policy_path)
    obs = torch.randn(5, 7, 3)
    actions = torch.rand(5, 7, 1) * 4 - 2
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded.segment_returns(obs, actions), ensemble.segment_returns(obs, actions)
        )
        torch.testing.assert_close(reloaded.reward_norm.mean, ensemble.reward_norm.mean)
        for a, b in zip(
            reloaded_policy.evaluate(obs[0], actions[0]),
            policy.evaluate(obs[0], actions[0]),
            strict=True,
        ):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="not a 'actor_critic'"):
        load_policy(ensemble_path)


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_old_one_whole(tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    path = tmp_path / "policy.pt"
    old = policy_for_env("Pendulum-v1", seed=3)
    save_checkpoint(old, path)
    # A child overwrites the checkpoint with another policy and is SIGKILLed half way
    # through writing the bytes.
    child = textwrap.dedent(
        f"""
        import io, os, signal, torch
        from training.ml.control import checkpoints
        from training.ml.control.policies import policy_for_env

        def half_then_die(obj, f):
            buffer = io.BytesIO()
            torch.serialization.save(obj, buffer)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        checkpoints.torch.save = half_then_die
        checkpoints.save_checkpoint(policy_for_env("Pendulum-v1", seed=4), {str(path)!r})
        """
    )
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", child], cwd=repo, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the killed write
    reloaded = load_policy(path)
    obs, actions = torch.randn(4, 3), torch.rand(4, 1)
    with torch.no_grad():
        for a, b in zip(reloaded.evaluate(obs, actions), old.evaluate(obs, actions), strict=True):
            torch.testing.assert_close(a, b)
