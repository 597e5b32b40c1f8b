"""Segments cut from rollouts, and the MP4 clips and posters people watch."""

from __future__ import annotations

import gymnasium as gym
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from training.ml.control.clips import write_clip, write_poster
from training.ml.control.policies import policy_for_env
from training.ml.control.rollouts import collect_segments
from training.ml.control.spaces import ActionSpec, encode_actions, env_spaces, to_env_actions

COUNTING_ENV = "tests/Counting-v0"


class CountingEnv(gym.Env):
    """Observes the step number within the episode; episodes last 3 to 12 steps."""

    observation_space = gym.spaces.Box(0.0, 100.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.length = int(self.np_random.integers(3, 13))
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], dtype=np.float32), 1.0, self.t >= self.length, False, {}


if COUNTING_ENV not in gym.registry:
    gym.register(id=COUNTING_ENV, entry_point=CountingEnv)


def test_segments_are_consecutive_steps_that_never_cross_an_episode_boundary():
    segments = collect_segments(
        env_id=COUNTING_ENV, policy=None, n_segments=40, segment_length=4, seed=0
    )
    assert len(segments) == 40
    for segment in segments:
        steps = segment.observations[:, 0]
        np.testing.assert_array_equal(np.diff(steps), 1.0)  # a reset would jump back to 0
        assert steps[0] % 4 == 0  # cut into consecutive pieces from the episode start
        assert segment.true_return == 4.0


def test_cartpole_segments_have_the_documented_shapes_and_repeat_for_a_seed():
    first = collect_segments(
        env_id="CartPole-v1", policy=None, n_segments=5, segment_length=8, seed=3
    )
    second = collect_segments(
        env_id="CartPole-v1", policy=None, n_segments=5, segment_length=8, seed=3
    )
    segment = first[0]
    assert segment.observations.shape == (8, 4) and segment.observations.dtype == np.float32
    assert segment.actions.shape == (8,) and np.issubdtype(segment.actions.dtype, np.integer)
    assert segment.true_rewards.shape == (8,) and segment.frames is None
    assert segment.true_return == 8.0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_box_actions_are_clipped_to_the_bounds_when_a_policy_acts():
    policy = policy_for_env("Pendulum-v1", seed=0)
    with torch.no_grad():
        policy.log_std.fill_(2.0)  # wide: many samples fall outside [-2, 2]
    segments = collect_segments(
        env_id="Pendulum-v1", policy=policy, n_segments=4, segment_length=10, seed=0
    )
    actions = np.stack([s.actions for s in segments])  # (4, 10, 1)
    assert actions.shape == (4, 10, 1) and actions.dtype == np.float32
    assert actions.min() >= -2.0 and actions.max() <= 2.0
    assert np.isclose(np.abs(actions), 2.0).any()


def test_discrete_observations_are_one_hot():
    assert env_spaces("FrozenLake-v1")[0] == 16
    segments = collect_segments(
        env_id="FrozenLake-v1", policy=None, n_segments=3, segment_length=2, seed=0
    )
    obs = segments[0].observations  # (2, 16)
    assert obs.shape == (2, 16)
    np.testing.assert_array_equal(obs.sum(1), 1.0)
    np.testing.assert_array_equal(obs[0], np.eye(16)[0])  # every episode starts at state 0


def test_actions_are_encoded_for_the_reward_model_and_decoded_for_the_env():
    discrete = ActionSpec(discrete=True, dim=3)
    one_hot = encode_actions(torch.tensor([[0, 2]]), discrete)  # (1, 2) → (1, 2, 3)
    assert one_hot.tolist() == [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    box = ActionSpec(discrete=False, dim=1, low=(-2.0,), high=(2.0,))
    assert to_env_actions(torch.tensor([[-5.0], [0.5], [3.0]]), box).tolist() == [
        [-2.0],
        [0.5],
        [2.0],
    ]
    assert ActionSpec.from_dict(box.to_dict()) == box


def test_too_short_episodes_give_a_clear_error():
    with pytest.raises(RuntimeError, match="shorter segment_length"):
        collect_segments(
            env_id=COUNTING_ENV,
            policy=None,
            n_segments=1,
            segment_length=50,
            seed=0,
            max_env_steps=400,
        )


def test_rendered_cartpole_segment_becomes_an_h264_clip_and_a_poster(tmp_path):
    pytest.importorskip("pygame", reason="gymnasium renders classic control with pygame")
    segments = collect_segments(
        env_id="CartPole-v1", policy=None, n_segments=1, segment_length=6, seed=0, render=True
    )
    frames = segments[0].frames
    assert frames.shape == (6, 400, 600, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])  # the cart moves

    clip = write_clip(frames, path=tmp_path / "clips" / "segment.mp4", fps=10)
    poster = write_poster(frames[0], path=tmp_path / "clips" / "segment.png")

    meta = next(imageio_ffmpeg.read_frames(str(clip)))
    assert meta["codec"].startswith("h264")
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (600, 400)
    n_frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(clip))
    assert n_frames == 6 and seconds == pytest.approx(0.6, abs=0.05)
    data = clip.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while loading
    assert iio.imread(poster).shape == (400, 600, 3)
    assert sorted(p.name for p in clip.parent.iterdir()) == ["segment.mp4", "segment.png"]


def test_odd_sized_frames_are_padded_to_even_dimensions(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 51, 75, 3), dtype=np.uint8)
    clip = write_clip(frames, path=tmp_path / "odd.mp4", fps=5)
    meta = next(imageio_ffmpeg.read_frames(str(clip)))
    assert meta["size"] == (76, 52)
    assert imageio_ffmpeg.count_frames_and_secs(str(clip))[0] == 3


def test_clip_writers_reject_frames_they_cannot_encode(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_clip(np.zeros((2, 4, 4, 3), np.float32), path=tmp_path / "x.mp4", fps=5)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_clip(np.zeros((4, 4, 3), np.uint8), path=tmp_path / "x.mp4", fps=5)
    with pytest.raises(ValueError, match="RGB"):
        write_poster(np.zeros((4, 4), np.uint8), path=tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_collecting_replayable_segments_reports_its_progress_per_batch_of_episodes():
    from training.ml.control.replay import collect_replayable_segments

    seen: list[float] = []
    found = collect_replayable_segments(
        env_id="Pendulum-v1", policy=None, n_segments=12, segment_length=50, seed=0,
        progress=seen.append,
    )  # fmt: skip
    assert len(found) >= 12
    # one episode first (4 segments), then the 2 episodes the 8 missing segments need
    assert seen == [4 / 12, 1.0]


def test_episodes_run_together_match_episodes_run_one_by_one_though_they_end_apart():
    """CartPole's episodes end at different steps; each one run in the batch is the one
    a single environment gives from the same reset seed."""
    from training.ml.control.lockstep import lockstep_episodes
    from training.ml.control.rollouts import episode_returns

    policy = policy_for_env("CartPole-v1", seed=3)
    together = lockstep_episodes("CartPole-v1", policy=policy, seeds=[5, 6, 7], deterministic=True)
    for episode in together:
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=episode.seed)
        rewards, done = [], False
        while not done:
            with torch.no_grad():
                action, _, _ = policy.act(
                    torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=True
                )
            obs, reward, terminated, truncated, _ = env.step(int(action[0]))
            rewards.append(reward)
            done = terminated or truncated
        assert len(episode.rewards) == len(rewards)
    assert len({len(e.rewards) for e in together}) > 1  # they did end apart
    returns = episode_returns(env_id="CartPole-v1", policy=policy, episodes=3, seed=5)
    assert returns.tolist() == [e.true_return for e in together]
