"""The glimpse environment: watch a clip one hard glimpse at a time and name the action."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.datasets import build
from envs.dynamics import EpisodeBatch


class GlimpseEnv(gym.Env[dict[str, Any], np.ndarray]):
    """Hard visual attention over GoogLeNet feature cubes (Gymnasium env).

    ## Description

    A video clip is a sequence of ``T`` feature cubes (GoogLeNet ``inception5b``: a 7 x 7 grid of
    1024-d cells per sampled frame). The agent watches the clip frame by frame. At every step it sees
    one cell (its *glimpse*), chooses the cell it looks at next (a "jump", as in the paper) and
    predicts the action class. The reward comes at the end of the clip. This is the environment of
    "reinforcement-learned visual attention for action recognition" (``shared/reference/paper.txt``).

    Ids: ``SyntheticGlimpse-v0`` (built-in synthetic benchmark, no files), ``HMDB51Glimpse-v0``,
    ``ActivityNetGlimpse-v0`` and ``StoreGlimpse-v0`` (any feature store, e.g. your own videos).

    ## Action Space

    ``MultiDiscrete([K*K, C])``: ``a[0]`` is the cell the next glimpse looks at (row-major on the
    K x K grid, K = 7), ``a[1]`` the class predicted at this step. Every step's prediction counts.

    ## Observation Space

    ``Dict``:

    | key        | space                       | meaning                                              |
    |------------|-----------------------------|------------------------------------------------------|
    | ``glimpse``  | Box(0, 65504, (D,))         | the cell looked at, in the current frame             |
    | ``location`` | Discrete(K*K)               | where that cell is                                   |
    | ``progress`` | Box(0, 1, (2,), float32)    | (frame index / T, glimpse index in the frame / m)    |
    | ``cube``     | Box(0, 65504, (K,K,D))    | the whole current frame (``observation_mode="cube"``)|

    ``observation_mode="glimpse"`` leaves ``cube`` out: the partially observed setting, where the
    agent never reads a cell it does not look at. Features are float32, or float16 with
    ``observation_dtype="float16"`` (half the memory traffic; the store keeps float16 anyway).

    ## Rewards

    Paper eq. 7, paid once at the final step (0 before)::

        r = eta * N_plus * R_plus + (1 - eta) * N_minus * R_minus

    N_plus / N_minus count the steps whose prediction was right / wrong; for multi-label videos
    (ActivityNet) a prediction is right when it is one of the video's labels. ``reward_mode="final"``
    scores only the last prediction and ``"dense"`` pays each step's term at once: both depart from the
    paper and exist for comparison.

    ## Starting State

    ``reset(seed=..., options={"video_index": i})`` starts clip ``i`` of the subset (``num_clips``
    clips); without it the clip is drawn from ``self.np_random``. The first glimpse is the centre cell
    of frame 0, or a random cell with ``initial_location="random"``.

    ## Episode End

    The episode *terminates* after ``T * m`` steps (every frame seen with ``m`` glimpses each), or after
    ``glimpse_budget`` steps if that is smaller (the paper's "limited N glimpses"). It is never truncated.
    Stepping a finished episode raises ``RuntimeError``: call ``reset()``.

    ## Info

    ``label`` (the clip's first label), ``video_id``, ``frame`` and ``location`` of the current glimpse,
    ``on_core`` (whether the glimpse lies on the ground-truth action core; ``None`` where the data has no
    core annotation), ``n_true_pos``, ``n_false_pos`` so far, and on the last step ``is_success``
    (whether the last prediction was right).

    ## Arguments

    ```python
    gymnasium.make("SyntheticGlimpse-v0", observation_mode="glimpse", glimpse_budget=5)
    gymnasium.make("HMDB51Glimpse-v0", data_root="data/hmdb51", split=2, subset="test")
    ```

    - ``subset``: ``"train"`` (default) or ``"test"``; ActivityNet also takes ``"training"`` /
      ``"validation"`` (``"test"`` means validation, as its test labels are withheld).
    - ``split``: HMDB-51's official split, 1 (default), 2 or 3.
    - ``data_root``: the feature store folder. Default ``$GLIMPSE_DATA/data/hmdb51`` (or
      ``.../activitynet``; ``$GLIMPSE_DATA`` defaults to the working directory); required for
      ``StoreGlimpse-v0``. Build stores with ``python -m feature_extractors``.
    - ``observation_mode`` ``"cube"`` | ``"glimpse"``; ``observation_dtype`` ``"float32"`` | ``"float16"``.
    - ``glimpses_per_frame`` (m, default 1); ``glimpse_budget`` (default None: unlimited).
    - ``reward_mode`` ``"paper"`` | ``"final"`` | ``"dense"``; ``eta`` (0.5), ``reward_positive`` (+1),
      ``reward_negative`` (-1).
    - ``initial_location`` ``"center"`` | ``"random"``.
    - ``frames``, ``feature_dim``, ``num_classes``: the synthetic data's shape (defaults 30, 1024, 51);
      for a store they are checked against what it holds.
    - Synthetic benchmark only: ``train_clips_per_class``, ``test_clips_per_class``, ``noise``,
      ``num_distractors``, ``drift``, ``saliency``, ``data_seed``, ``noise_variants``
      (see ``envs.synthetic.SyntheticConfig``).
    - ``render_mode``: ``"rgb_array"`` gives an image of the current frame: the 7 x 7 grid over the
      real video frame when the source video is readable (else a heat map of cell energy), the
      attended cell, the ground-truth core where known, the label and the current prediction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, dataset: str = "synthetic", render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose one of {self.metadata['render_modes']}")
        self.source, self.rules = build(dataset, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.rules.observation_space()
        self.action_space = self.rules.action_space()
        self._batch = EpisodeBatch(self.source, self.rules, 1)
        self._slot = np.zeros(1, dtype=np.int64)
        self._started = False
        self._renderer: Any = None

    @property
    def num_clips(self) -> int:
        """Clips in the chosen subset (valid ``video_index`` values are 0 .. num_clips - 1)."""
        return self.source.num_clips

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        clip = choose_clip(self.np_random, self.num_clips, options)
        location = self.rules.center_cell
        if self.rules.initial_location == "random":
            location = int(self.np_random.integers(self.rules.num_cells))
        self._batch.start(self._slot, np.array([clip]), np.array([location]))
        self._started = True
        return self._observe(final=False)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self._started or self._batch.done[0]:
            raise RuntimeError(
                "step() called on a finished episode (or before reset()): call env.reset() to start the next clip"
            )
        act = self._batch.check_actions(action, self.action_space)
        reward, last = self._batch.advance(self._slot, act[:, 0], act[:, 1])
        obs, info = self._observe(final=bool(last[0]))
        return obs, float(reward[0]), bool(last[0]), False, info

    def next_core_mask(self) -> np.ndarray:
        """Ground-truth core cells (bool (K*K,)) of the frame the next action's glimpse lands in.

        For the ``oracle`` baseline; raises ``ValueError`` where the data has no core annotation.
        """
        return self._batch.next_core_mask(self._slot)[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; make the env with render_mode='rgb_array'")
            return None
        from envs.render import FrameRenderer  # cv2 is only needed when rendering

        if self._renderer is None:
            self._renderer = FrameRenderer(self.source, self.rules)
        if not self._started:
            self._batch.start(self._slot, np.array([0]), np.array([self.rules.center_cell]))
        return self._renderer.draw(self._batch, 0)

    def close(self) -> None:
        self._renderer = None

    # -- helpers --------------------------------------------------------------------------------
    def _observe(self, final: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        batch_obs, batch_info = self._batch.observe(self._slot)
        obs = {k: v[0] for k, v in batch_obs.items()}
        obs["location"] = np.int64(obs["location"])
        info = {k: _python(v[0]) for k, v in batch_info.items()}
        if not final:
            del info["is_success"]
        return obs, info


def choose_clip(rng: np.random.Generator, num_clips: int, options: dict[str, Any] | None) -> int:
    """The clip to start: ``options["video_index"]`` if given (checked), else drawn from ``rng``."""
    if options and options.get("video_index") is not None:
        index = options["video_index"]
        if not isinstance(index, int | np.integer) or not 0 <= index < num_clips:
            raise ValueError(
                f"options['video_index']={index!r} is not a clip of this subset: use an integer in "
                f"[0, {num_clips - 1}] (env.unwrapped.num_clips = {num_clips})"
            )
        return int(index)
    return int(rng.integers(num_clips))


def _python(value: Any) -> Any:
    """numpy scalar -> Python scalar, so infos look like any Gymnasium env's."""
    return value.item() if isinstance(value, np.generic) else value
