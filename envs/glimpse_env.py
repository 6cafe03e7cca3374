"""The glimpse environment: watch a clip one hard glimpse at a time and name the action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.build import build
from envs.dynamics import is_integral, require_core
from envs.ladder import ladder_table


class GlimpseEnv(gym.Env[dict[str, Any], np.ndarray]):
    """Hard visual attention over GoogLeNet feature cubes (Gymnasium env).

    ## Description

    A video clip is a sequence of ``T`` feature cubes (GoogLeNet ``inception5b``: a 7 x 7 grid of
    1024-d cells per sampled frame). The agent watches the clip frame by frame. At every step it sees
    one cell (its *glimpse*), chooses the cell it looks at next (a "jump", as in the paper) and
    predicts the action class. The reward comes at the end of the clip. This is the environment of
    "deep visual attention by REINFORCE" for action recognition (docs/environment.md).

    Ids: ``SyntheticGlimpse-v0`` (built-in synthetic benchmark, no files), ``HMDB51Glimpse-v0``,
    ``ActivityNetGlimpse-v0`` and ``StoreGlimpse-v0`` (any feature store, e.g. your own videos).

    The synthetic benchmark comes as a difficulty ladder (``envs/ladder.py``): registered variants,
    each a fixed set of synthetic knobs (``gym.make`` keyword arguments still override them), from an
    easy rung that SB3 PPO, A2C and RecurrentPPO learn from the reward alone within 200k env steps to
    the paper-scale ``SyntheticGlimpse-v0``:

    LADDER_TABLE

    On a feature store, ``classes=[...]`` (names) or ``max_classes=N`` (the first N) keep a subset of
    its classes, relabelled 0..n-1 in the store's order, so HMDB-51 can start on 5 classes.

    ## Action Space

    ``MultiDiscrete([K*K, C])``: ``a[0]`` is the cell the next glimpse looks at (row-major on the
    K x K grid, K = 7), ``a[1]`` the class predicted at this step. Every step's prediction counts.
    With ``early_exit=True`` it is ``MultiDiscrete([K*K, C, 2])``: ``a[2] = 1`` stops watching (below).

    ## Observation Space

    ``Dict``:

    | key          | space                     | meaning                                                |
    |--------------|---------------------------|--------------------------------------------------------|
    | ``glimpse``  | Box(0, 65504, (D,))       | the cell looked at, in the current frame               |
    | ``location`` | Discrete(K*K)             | where that cell is                                     |
    | ``progress`` | Box(0, 1, (2,), float32)  | (frame index / T, glimpse index in the frame / m)      |
    | ``periphery``| Box(0, 65504, (K, K, k))  | peripheral view of the current frame (glimpse mode)    |
    | ``cube``     | Box(0, 65504, (K, K, D))  | the whole current frame (``observation_mode="cube"``)  |

    (65504 is float16's largest value: stores hold float16 features.)

    ``observation_mode="glimpse"`` leaves ``cube`` out: the partially observed setting, where the
    agent reads one cell and the periphery, never the cube. Features are float32, or float16 with
    ``observation_dtype="float16"`` (half the memory traffic; the store keeps float16 anyway).

    ## Peripheral view

    ``periphery`` gives, for every cell of the current frame, ``k`` numbers: the means of ``k``
    contiguous groups of its D channels (``envs.periphery.periphery``; the one definition, used by the
    synthetic source, by the store writer and by ``python -m feature_extractors add-periphery``). It is
    the cheap coarse view of the whole field that RAM's retina and AdaFocus's global glance give: enough
    to see *where* something salient is, not enough to say *what* it is. It is a fixed map, fitted on
    nothing, so it cannot leak labels. It is on by default in glimpse mode and off in cube mode (the cube
    already holds every cell); ``periphery_dim=0`` gives the blind glimpse mode (one cell, nothing else),
    ``periphery_dim=k`` any size up to D. Default ``k``: the largest (at most 64) for which a step
    reads at most a tenth of the cube's values (``D + K*K*k <= K*K*D / 10``): 64 at D = 1024 (4,160 values
    per step against 50,176, 8.3 %); 5 at D = 64; below D = 13 not even one value per cell fits, and
    the default 1 exceeds the tenth. Stores hold it in ``periphery.npy`` (k is the store's; stores written
    before it existed need ``python -m feature_extractors add-periphery --store DIR``).

    Why channel-group means, and why 64 (``bench/bench_synthetic_calibration.py`` and the README): on
    the default synthetic benchmark, a cell picked by a linear saliency score on the periphery lies on the
    action core 92 % of the time with 64 group means (58 % with 32, 46 % with 16, 95 % with 81; 66 % with
    64 group maxima, 64 % with 64 random projections, 43 % with the sum of all channels), and glimpsing it
    gives 99 % test accuracy with a nearest-class-mean classifier,
    while the periphery alone classifies at 15 % (the core's class evidence is diluted by averaging
    channels, and distractors carry other classes as strongly). Real GoogLeNet features concentrate
    object evidence in subsets of channels too (group means keep each branch's energy), but this was
    measured on the synthetic generator only.

    ## Rewards

    Paper eq. 7, paid once at the final step (0 before)::

        r = eta * N_plus * R_plus + (1 - eta) * N_minus * R_minus

    N_plus / N_minus count the steps whose prediction was right / wrong; for multi-label videos
    (ActivityNet) a prediction is right when it is one of the video's labels. ``reward_mode="final"``
    scores only the last prediction and ``"dense"`` pays each step's term at once: both depart from the
    paper and exist for comparison.

    ## Starting State

    ``reset(seed=..., options={"video_index": i})`` starts clip ``i`` of the subset (``num_clips``
    clips); without it the clip is drawn from ``self.np_random``. Other option keys are refused
    (``ValueError`` naming the allowed ones). The first glimpse is the centre cell
    of frame 0, or a random cell with ``initial_location="random"``.

    ## Episode End

    The episode *terminates* after ``T * m`` steps (every frame seen with ``m`` glimpses each), or after
    ``glimpse_budget`` steps if that is smaller (the paper's "limited N glimpses"), or when the agent stops
    (``early_exit``). It is never truncated. The final observation shows the last frame a prediction used
    (``info["frame"] + 1`` frames were watched), so nothing past it is computed. Stepping a finished
    episode raises ``RuntimeError``: call ``reset()``.

    ## Early exit

    ``early_exit=True`` adds a third action component, ``stop``. ``stop = 1`` ends the episode after this
    step's prediction, and that prediction counts for every step not taken: the agent commits to it, so
    eq. 7 still scores ``T * m`` predictions and stopping early pays off only when the prediction is
    right. Frames never reached are never computed, which is the compute a stopping policy saves.
    ``frame_cost=c`` charges ``c`` per frame watched, at the last step, so a policy trades accuracy for
    compute: stopping after ``n`` of ``T`` frames saves ``c * (T - n)`` and risks the committed
    prediction.

    ## Info

    ``label`` (the clip's first label), ``video_id``, ``frame`` and ``location`` of the current glimpse,
    ``on_core`` (whether the glimpse lies on the ground-truth action core; absent where the data has no
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
    - ``classes`` (a list of class names, or one comma-separated string) or ``max_classes`` (N): a
      class subset of a store (clips of other classes are left out, other labels of a multi-label
      video dropped). Errors name the store's classes.
    - ``data_root``: the feature store folder. Default ``$GLIMPSE_DATA/data/hmdb51`` (or
      ``.../activitynet``; ``$GLIMPSE_DATA`` defaults to the working directory); required for
      ``StoreGlimpse-v0``. Build stores with ``python -m feature_extractors``.
    - ``observation_mode`` ``"cube"`` | ``"glimpse"``; ``observation_dtype`` ``"float32"`` | ``"float16"``.
    - ``periphery_dim``: None (default: k as above in glimpse mode, none in cube mode), 0 (no
      periphery), or k in [1, D]; for a store it must equal the k of its ``periphery.npy``.
    - ``periphery_motion``: False (default) or True: every cell's periphery also holds its motion
      periphery, the k channel-group means of ``|X_t - X_{t-1}|`` (the cell's change since the previous
      frame; zero at the first frame; ``envs.periphery.motion``), so ``periphery`` has 2k values per cell.
      It is the cue that finds an actor marked only by moving. It needs a periphery, and gives one (the
      default k) in cube mode too. Stores hold it in ``motion.npy`` (written at extraction, or by
      ``add-periphery``); the synthetic benchmark computes it from the frames.
    - ``glimpses_per_frame`` (m, default 1); ``glimpse_budget`` (default None: unlimited).
    - ``early_exit`` (False): a ``stop`` action component; ``frame_cost`` (0.0): reward per frame watched.
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

    - v0: the current version. In the synthetic data the class evidence and the core's signature are
      scaled by sqrt(1024 / D), so their per-cell signal-to-noise ratio does not fall with ``feature_dim``
      (unscaled, the core is undetectable at D = 64). Glimpse mode includes the ``periphery`` observation
      by default; ``periphery_dim=0`` is the blind glimpse mode.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, dataset: str = "synthetic", render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose one of {self.metadata['render_modes']}")
        self.source, self.rules = build(dataset, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.rules.observation_space()
        self.action_space = self.rules.action_space()
        self._renderer: Any = None
        # One episode's state as Python scalars: the rules are plain arithmetic (envs.dynamics), and
        # scalars keep a step far cheaper than numpy batches of one.
        self.episode: Episode | None = None

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
        check_reset_options(options, RESET_OPTIONS)
        super().reset(seed=seed)
        clip = choose_clip(self.np_random, self.num_clips, options)
        location = self.rules.center_cell
        if self.rules.initial_location == "random":
            location = int(self.np_random.integers(self.rules.num_cells))
        first = np.array([clip])
        label, video_id = int(self.source.labels(first)[0]), str(self.source.video_ids(first)[0])
        self.episode = Episode(clip, label, self.source.label_set(clip), video_id, location)
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        ep = self.episode
        if ep is None or ep.done:
            raise RuntimeError(
                "step() called on a finished episode (or before reset()): call env.reset() to start the next clip"
            )
        cell, prediction, stop = self._parse(action)
        correct = prediction in ep.labels
        ep.steps, ep.n_true_pos, ep.n_false_pos, ep.done, reward = self.rules.transition(
            ep.steps, ep.n_true_pos, ep.n_false_pos, correct, stop)
        ep.location, ep.prediction = cell, prediction
        obs, info = self._observe()
        return obs, float(reward), ep.done, False, info

    def next_core_mask(self) -> np.ndarray:
        """Ground-truth core cells (bool (K*K,)) of the frame the next action's glimpse lands in.

        For the ``oracle`` baseline; raises ``ValueError`` where the data has no core annotation.
        """
        ep = self._require_episode()
        require_core(self.source)
        return self.source.core_mask(np.array([ep.clip]), np.array([self.rules.next_frame_of(ep.steps)]))[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; make the env with render_mode='rgb_array'")
            return None
        from envs.render import FrameRenderer  # cv2 is only needed when rendering

        if self._renderer is None:
            self._renderer = FrameRenderer(self.source, self.rules)
        ep = self._require_episode()
        return self._renderer.draw(ep.clip, self.rules.observed_frame(ep.steps, ep.done), ep.location, ep.label,
                                   ep.prediction, ep.video_id)

    def close(self) -> None:
        self._renderer = None

    # -- helpers --------------------------------------------------------------------------------
    def _require_episode(self) -> Episode:
        if self.episode is None:
            raise RuntimeError("no episode yet: call env.reset() first")
        return self.episode

    def _parse(self, action: Any) -> tuple[int, int, int]:
        """(cell, class, stop) of an action (stop 0 without ``early_exit``); ``ValueError`` with the fix for
        anything outside the space."""
        size = self.rules.action_size
        if type(action) is np.ndarray and action.shape == (size,) and action.dtype.kind in "iu":  # the usual case
            values = action.tolist()
        else:
            arr = np.asarray(action)
            if arr.shape != (size,) or not is_integral(arr):
                raise ValueError(f"invalid action {action!r}: expected {size} integers {self.rules.action_names} "
                                 f"(action space {self.action_space})")
            values = [int(v) for v in arr.tolist()]
        cell, prediction, stop = (*values, 0) if size == 2 else values
        self.rules.check_action(cell, prediction, self.action_space, stop)
        return cell, prediction, stop

    def _observe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ep, rules = self.episode, self.rules
        assert ep is not None
        frame = rules.observed_frame(ep.steps, ep.done)
        glimpse, on_core = self.source.one_glimpse(ep.clip, frame, ep.location)
        obs = {
            "glimpse": glimpse,
            "location": np.int64(ep.location),
            "progress": np.array(rules.progress(ep.steps), dtype=np.float32),
        }
        if rules.periphery_dim:
            obs["periphery"] = self.source.one_periphery(ep.clip, frame)
            if rules.periphery_motion:
                obs["periphery"] = np.concatenate([obs["periphery"], self.source.one_motion(ep.clip, frame)], axis=-1)
        if rules.observation_mode == "cube":
            obs["cube"] = self.source.one_cube(ep.clip, frame)
        info = {
            "label": ep.label,
            "video_id": ep.video_id,
            "frame": frame,
            "location": ep.location,
            "n_true_pos": ep.n_true_pos,
            "n_false_pos": ep.n_false_pos,
        }
        if on_core is not None:  # absent where the data has no core annotation (Gymnasium's info convention)
            info["on_core"] = on_core
        if ep.done:
            info["is_success"] = ep.prediction in ep.labels
        return obs, info


# The manual's ladder table comes from the ladder itself (one source of truth); None under python -OO.
if GlimpseEnv.__doc__:
    GlimpseEnv.__doc__ = GlimpseEnv.__doc__.replace("LADDER_TABLE", ladder_table().replace("\n", "\n    "))


@dataclass
class Episode:
    """The state of the single env's current episode."""

    clip: int
    label: int
    labels: frozenset[int]
    video_id: str
    location: int
    steps: int = 0
    n_true_pos: int = 0
    n_false_pos: int = 0
    prediction: int = -1
    done: bool = False


#: The keys ``reset(options=...)`` of the single env takes.
RESET_OPTIONS = ("video_index",)


def check_reset_options(options: Any, allowed: tuple[str, ...]) -> None:
    """Refuse reset options this env does not know: a misspelt key would otherwise be ignored silently."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise ValueError(f"reset(options=...) takes a dict (keys: {', '.join(allowed)}), got {type(options).__name__}")
    unknown = sorted(str(k) for k in options if k not in allowed)
    if unknown:
        raise ValueError(f"reset(options=...): unknown key(s) {', '.join(map(repr, unknown))}; this env takes "
                         f"{', '.join(map(repr, allowed))}")


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
