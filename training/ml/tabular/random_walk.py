"""The random walk of Sutton & Barto (Example 6.2) as a gymnasium env with a tabular model.

States 0 … n+1 in a row; 0 and n+1 are terminal, episodes start in the middle. Action 0
moves left, action 1 moves right (a policy such as π = (½, ½) gives the classic walk).
Entering the right end pays `right_reward`, the left end `left_reward`, any other step 0.
It exposes `P` and `initial_state_distrib` like the toy-text envs, so `tabular_mdp_from_env`
reads its model, which makes it the small MDP for checking sample-based estimates against
closed forms.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LEFT, RIGHT = 0, 1


class RandomWalkEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self, *, n_states: int = 5, left_reward: float = 0.0, right_reward: float = 1.0
    ) -> None:
        if n_states < 1:
            raise ValueError(f"n_states = {n_states}; the walk needs at least 1 inner state.")
        self.n_inner = n_states
        n_total = n_states + 2
        self.observation_space = gym.spaces.Discrete(n_total)
        self.action_space = gym.spaces.Discrete(2)
        start = (n_total - 1) // 2
        self.initial_state_distrib = np.eye(n_total)[start]
        self.P: dict[int, dict[int, list[tuple[float, int, float, bool]]]] = {}
        for s in range(n_total):
            self.P[s] = {}
            for a in (LEFT, RIGHT):
                if s in (0, n_total - 1):  # terminal: stays, pays nothing
                    self.P[s][a] = [(1.0, s, 0.0, True)]
                    continue
                nxt = s - 1 if a == LEFT else s + 1
                reward = left_reward if nxt == 0 else right_reward if nxt == n_total - 1 else 0.0
                self.P[s][a] = [(1.0, nxt, reward, nxt in (0, n_total - 1))]
        self._state = start

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict]:
        super().reset(seed=seed)
        self._state = int(np.argmax(self.initial_state_distrib))
        return self._state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        (_, next_state, reward, terminated), *_ = self.P[self._state][int(action)]
        self._state = next_state
        return next_state, reward, terminated, False, {}
