"""The synthetic benchmark (docs/environment.md): feature cubes where attention matters, made on the fly.

Every clip holds a few *actors*: rectangles of 1-4 cells that drift slowly across the 7 x 7 grid
(bouncing off its borders). Actor 0 is the *action core*: its cells carry weak evidence of the clip's
class plus a saliency signature. The other actors are *distractors*: evidence of other classes, as
strong as the core, for the whole clip, without the signature. All other cells are background.

A cell's feature vector is one row of a fixed table (class x noise variant, for the core and for
distractors, plus background variants), picked by a counter-based hash of (data seed, subset, clip,
frame, cell). So any glimpse of any clip is computed in O(1) without storing clips: memory is the
table (a few tens of MB) plus a bounded cache of recently used clips' layouts (32 MiB), whatever the
number of clips, and a batch of glimpses is one numpy gather.
Rows are ReLU'd sums of a baseline, the class prototype, the signature and Gaussian noise, so values
are non-negative and sparse like GoogLeNet's ``inception5b`` activations. Prototype and signature
amplitudes scale with sqrt(1024 / D), so changing ``feature_dim`` changes the vector's length, not how
hard the task is (the per-cell signal-to-noise ratio of class evidence and saliency stays the same).

Calibration (``tests/test_synthetic.py``, ``bench/bench_synthetic_calibration.py``): with the
defaults, a nearest-class-mean classifier on the clip average of the glimpsed cells reaches >= 90 %
test accuracy with oracle glimpses (one core cell per frame), <= 60 % on the average of all 49 cells
and <= 40 % with random glimpses.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.periphery import default_periphery_dim, periphery
from envs.sources import FeatureSource
from envs.store import TEST, TRAIN, ClipRecord, StoreWriter

GRID = 7
SUBSET_IDS = {TRAIN: 1, TEST: 2}
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_DIRECTIONS = 1024  # actors move along one of this many headings
#: Bound on the memory of the cache of clip layouts (see ``SyntheticSource._layouts``).
LAYOUT_CACHE_BYTES = 32 << 20
REFERENCE_FEATURE_DIM = 1024  # the D at which evidence and signature have their nominal strength
MIN_SIGNATURE_CHANNELS = 4


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed 64-bit hash of a uint64 array (in place after the first add)."""
    with np.errstate(over="ignore"):
        z = np.add(x, _GOLDEN, dtype=np.uint64)
        z ^= z >> np.uint64(30)
        z *= _MIX1
        z ^= z >> np.uint64(27)
        z *= _MIX2
        z ^= z >> np.uint64(31)
        return z


@dataclass(frozen=True)
class SyntheticConfig:
    """The knobs of the synthetic data (``SyntheticGlimpse-v0`` keyword arguments)."""

    num_classes: int = 51
    feature_dim: int = 1024
    frames: int = 30
    train_clips_per_class: int = 70
    test_clips_per_class: int = 30
    #: Standard deviation of the per-cell Gaussian noise (class evidence has unit scale).
    noise: float = 1.0
    #: Distractor actors per clip (each carries another class's evidence, as strong as the core's).
    num_distractors: int = 3
    #: Core and distractor speed, in cells per frame.
    drift: float = 0.15
    #: Strength of the core's saliency signature (0: the core cannot be told from a distractor).
    saliency: float = 1.0
    #: Seed of the data (class prototypes, noise table, clip layouts). ``reset(seed=)`` does not touch it.
    data_seed: int = 0
    #: Noise variants per class in the table (memory grows with it, not with the number of clips).
    noise_variants: int = 64

    def __post_init__(self) -> None:
        checks = {
            "num_classes": self.num_classes >= 2,
            "feature_dim": self.feature_dim >= 8,
            "frames": self.frames >= 1,
            "train_clips_per_class": self.train_clips_per_class >= 1,
            "test_clips_per_class": self.test_clips_per_class >= 1,
            "noise": self.noise >= 0,
            "num_distractors": 0 <= self.num_distractors <= 8,
            "drift": 0 <= self.drift <= 1,
            "saliency": self.saliency >= 0,
            "noise_variants": self.noise_variants >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid synthetic setting(s) {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}: need "
                "num_classes >= 2, feature_dim >= 8, frames >= 1, clips per class >= 1, noise >= 0, "
                "0 <= num_distractors <= 8, 0 <= drift <= 1, saliency >= 0, noise_variants >= 1"
            )


def _class_table(cfg: SyntheticConfig) -> np.ndarray:
    """Rows [core (C*J) | distractor (C*J) | background (J)] of D float32 values, all >= 0."""
    rng = np.random.default_rng([cfg.data_seed, 0x5EED])
    c, d, j = cfg.num_classes, cfg.feature_dim, cfg.noise_variants
    # Sparse non-negative prototypes: each class drives about one channel in eight.
    prototypes = ((rng.random((c, d)) < 0.125) * rng.uniform(0.5, 1.5, (c, d))).astype(np.float32)
    signature_channels = rng.random(d) < 0.0625
    signature_scale = rng.uniform(0.5, 1.5, d)
    # A few channels at least, so a small D still has a signature to find (no effect at the default D).
    if signature_channels.sum() < MIN_SIGNATURE_CHANNELS:
        signature_channels[rng.permutation(d)[:MIN_SIGNATURE_CHANNELS]] = True
    signature = (signature_channels * signature_scale * cfg.saliency).astype(np.float32)
    baseline = rng.uniform(-0.6, 0.4, d).astype(np.float32)  # shifted so ReLU zeroes about half the background values
    # Evidence and signature live in a fixed share of the channels, so their energy grows with D while the
    # noise's per channel does not: scaling their amplitude by sqrt(D_ref / D) keeps the per-cell
    # signal-to-noise ratio (how well a matched filter finds the core, how much a core cell says about the
    # class) the same for every D. Without it the core is undetectable at D = 64 (a matched filter on the
    # true signature finds it in 16 % of frames against 77 % at D = 1024), so no policy could learn there.
    snr_scale = np.float32(np.sqrt(REFERENCE_FEATURE_DIM / d))
    strength = 0.35 * snr_scale  # weak per-frame evidence: memory across frames is what makes it reliable
    signature_strength = 0.35 * snr_scale

    # One noise bank shared by all classes, so a noise variant carries no class information.
    noise = rng.normal(0.0, cfg.noise, (j, d)).astype(np.float32)
    core = baseline + strength * prototypes[:, None] + signature_strength * signature + noise
    distractor = baseline + strength * prototypes[:, None] + noise
    background = baseline + noise
    table = np.concatenate([core.reshape(c * j, d), distractor.reshape(c * j, d), background])
    return np.maximum(table, 0.0).astype(np.float32)


@dataclass(frozen=True)
class _ClipActors:
    """The actors of a batch of B clips, A per clip (core first): the parts that do not change in a clip."""

    clip_key: np.ndarray  # (B,) uint64: the clip's hash, which seeds its noise variants
    size: np.ndarray  # (B, A) intp: bit 0 two rows tall, bit 1 two columns wide
    room: np.ndarray  # (B, A, 2): free rows / columns for the top-left corner
    start: np.ndarray  # (B, A, 2) float64: top-left corner at frame 0 (before bouncing)
    velocity: np.ndarray  # (B, A, 2): cells per frame
    row_of_set: np.ndarray  # (B * 2**A,) int64: first table row of each set of actors covering a cell
    set_offset: np.ndarray  # (B, 1) uint32: where each clip's entries start in ``row_of_set``


class SyntheticSource(FeatureSource):
    """The clips of one subset of the synthetic benchmark, generated on demand."""

    def __init__(
        self, config: SyntheticConfig, subset: str = TRAIN, dtype: np.dtype | type = np.float32, periphery_dim: int = 0
    ) -> None:
        if subset not in SUBSET_IDS:
            raise ValueError(f"unknown subset {subset!r} for the synthetic benchmark: choose 'train' or 'test'")
        self.config = config
        self.subset = subset
        self.dtype = np.dtype(dtype)
        self.class_names = [f"class_{i:02d}" for i in range(config.num_classes)]
        self.frames, self.grid, self.feature_dim = config.frames, GRID, config.feature_dim
        per_class = config.train_clips_per_class if subset == TRAIN else config.test_clips_per_class
        self.num_clips = per_class * config.num_classes
        self.has_core = True
        self.description = f"synthetic benchmark ({subset})"
        table = _class_table(config)
        self._table = table.astype(self.dtype)
        self.periphery_dim = int(periphery_dim)
        # Every cell is a table row, so the periphery of every row is computed once (a few hundred KB).
        self._periphery_table = periphery(table, self.periphery_dim).astype(self.dtype) if self.periphery_dim else None
        self._key = _mix(np.array([config.data_seed ^ SUBSET_IDS[subset]], dtype=np.uint64))  # (1,): broadcasts
        self._num_actors = 1 + config.num_distractors
        self._actor_salt = (np.arange(1, self._num_actors + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        self._is_core = (np.arange(self._num_actors) == 0)[None, :]
        angles = np.arange(_DIRECTIONS) * (2 * np.pi / _DIRECTIONS)
        self._velocity = config.drift * np.stack([np.sin(angles), np.cos(angles)], -1)  # cells/frame
        tall, wide = np.arange(4) & 1, np.arange(4) >> 1  # the four actor sizes
        self._room = np.stack([GRID - 1 - tall, GRID - 1 - wide], -1)
        # Bit mask of each size's cells with its top-left corner on cell 0 (bit r * 7 + c).
        self._shape_bits = (1 | (wide << 1) | (tall << GRID) | ((tall & wide) << (GRID + 1))).astype(np.uint64)
        self._all_cells = np.arange(GRID * GRID, dtype=np.uint64)
        # Cells an actor of each size covers with its top-left corner on each cell, as bit k of a uint32 for
        # actor k: ``_cover_bits[k][size, corner, cell]``. OR-ing them gives each cell's set of actors.
        corners = self._shape_bits[:, None] << self._all_cells[None, :]  # (4, K*K) bit masks
        covers = ((corners[:, :, None] >> self._all_cells) & np.uint64(1)).astype(np.uint32)  # (4, K*K, K*K)
        self._cover_bits = [covers << np.uint32(k) for k in range(self._num_actors)]
        # The front-most actor of each set: its lowest index (the core, actor 0, wins overlaps); A: none.
        self._front_actor = np.array([(c & -c).bit_length() - 1 if c else self._num_actors
                                      for c in range(1 << self._num_actors)], dtype=np.intp)
        # For a power-of-two number of variants (the default 64), x % J is x & (J - 1): the same rows, and
        # 15x cheaper than numpy's uint64 modulo, which dominated the 49-cell layout of the periphery.
        j = config.noise_variants
        self._variant_mask = np.uint64(j - 1) if j & (j - 1) == 0 else None
        # Layouts (table rows and core flags of every frame and cell) of recently used clips, least recently
        # used first, at most LAYOUT_CACHE_BYTES; and the last batch's, stacked (see ``_layouts``).
        self._layout_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._layout_capacity = max(1, LAYOUT_CACHE_BYTES // (config.frames * GRID * GRID * 5))
        self._batch_layout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._last_clip: int | None = None
        self._last_layout: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))

    # -- labels ---------------------------------------------------------------------------------
    def labels(self, clips: np.ndarray) -> np.ndarray:
        return np.asarray(clips, dtype=np.int64) % self.config.num_classes

    def is_correct(self, clips: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        return self.labels(clips) == np.asarray(predictions)

    def video_ids(self, clips: np.ndarray) -> np.ndarray:
        return np.array([f"synthetic-{self.subset}-{int(c):06d}" for c in np.atleast_1d(clips)], dtype=object)

    # -- layout ---------------------------------------------------------------------------------
    def _clip_actors(self, clips: np.ndarray) -> _ClipActors:
        """The actors of ``clips``: what does not change within a clip.

        Actor 0 is the core. Each actor's size (1 x 1, 1 x 2, 2 x 1 or 2 x 2 cells), start, heading and
        (for distractors) class come from one 64-bit hash of (clip, actor).
        """
        clips = np.asarray(clips)
        cfg = self.config
        clip_key = _mix(self._key ^ clips.astype(np.uint64))
        h = _mix(clip_key[:, None] ^ self._actor_salt)  # (B, A)
        size = (h & np.uint64(3)).astype(np.intp)  # bit 0: two rows tall, bit 1: two columns wide
        room = self._room[size]  # (B, A, 2): free rows / columns for the top-left corner
        fraction = np.stack([(h >> np.uint64(2)) & np.uint64(0xFFFF), (h >> np.uint64(18)) & np.uint64(0xFFFF)], -1)
        start = fraction * (1 / 65536) * (room + 0.999)
        heading = ((h >> np.uint64(34)) & np.uint64(_DIRECTIONS - 1)).astype(np.intp)
        label = self.labels(clips)[:, None]
        offset = 1 + ((h >> np.uint64(50)) % np.uint64(cfg.num_classes - 1)).astype(np.int64)
        cls = np.where(self._is_core, label, (label + offset) % cfg.num_classes)
        cj = cfg.num_classes * cfg.noise_variants
        # Table rows [core (C*J) | distractor (C*J) | background (J)]: each actor's block, then the background's.
        first_row = np.where(self._is_core, 0, cj) + cls * cfg.noise_variants
        first_row = np.concatenate([first_row, np.full((len(clips), 1), 2 * cj, dtype=np.int64)], 1)
        # The table row block of every set of actors that can cover a cell: its front-most actor's (or the
        # background's), flattened over the batch; the clip's entries start at ``set_offset``.
        row_of_set = first_row[:, self._front_actor].ravel()
        set_offset = (np.arange(len(clips), dtype=np.uint32) << np.uint32(self._num_actors))[:, None]
        return _ClipActors(clip_key, size, room, start, self._velocity[heading], row_of_set, set_offset)

    def _rows_for(self, clips: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table row of every cell (row-major) of each (clip, frame) and whether it is a core cell: 2 x (B, K*K)."""
        actors = self._clip_actors(clips)
        t = np.asarray(frames, dtype=np.float64)[:, None, None]
        top_left = _bounce(actors.start + actors.velocity * t, actors.room)  # (B, A, 2)
        corner = top_left[..., 0] * GRID + top_left[..., 1]  # (B, A): the cell of each actor's top-left corner
        spot = np.asarray(frames, dtype=np.uint64)[:, None] * np.uint64(GRID * GRID) + self._all_cells
        # Per cell, the set of actors covering it (bit k: actor k) above the clip's offset into row_of_set.
        actor_set = np.empty(spot.shape, dtype=np.uint32)
        actor_set[:] = actors.set_offset
        for k, bits in enumerate(self._cover_bits):
            actor_set |= bits[actors.size[:, k], corner[:, k]]  # (B, K*K)
        variant = _mix(actors.clip_key[:, None] ^ spot)
        if self._variant_mask:
            variant &= self._variant_mask
        else:
            variant %= np.uint64(self.config.noise_variants)
        table_row = np.take(actors.row_of_set, actor_set)
        table_row += variant.view(np.int64)  # variant < J: the same value as int64
        return table_row, (actor_set & np.uint32(1)).astype(bool)  # bit 0: the core

    def _layouts(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table rows (int32) and core flags of every frame and cell of ``clips``: 2 x (B, T, K*K).

        A clip's layout is hashed once while it stays in a bounded cache of recently used clips (32 MiB:
        every clip of the default train subset), and a batch of episodes asks for the same clips at every
        step until it resets, so a step of the batched env gathers rows instead of hashing 49 cells per
        episode (which cost more than all the rest of the step). Memory stays bounded whatever the
        number of clips.
        """
        clips = np.asarray(clips, dtype=np.int64).reshape(-1)
        last = self._batch_layout
        if last is not None and last[0].shape == clips.shape and np.array_equal(last[0], clips):
            return last[1], last[2]
        cache, t = self._layout_cache, self.config.frames
        wanted = dict.fromkeys(clips.tolist())
        for clip in wanted:
            if clip in cache:
                wanted[clip] = cache[clip]
                cache.move_to_end(clip)
        missing = np.array([clip for clip, layout in wanted.items() if layout is None], dtype=np.int64)
        if len(missing):
            rows, core = self._rows_for(np.repeat(missing, t), np.tile(np.arange(t), len(missing)))
            rows, core = rows.astype(np.int32).reshape(-1, t, GRID * GRID), core.reshape(-1, t, GRID * GRID)
            for i, clip in enumerate(missing.tolist()):
                # copies: a view would keep the whole batch alive as long as any one clip of it is cached
                wanted[clip] = cache[clip] = (rows[i].copy(), core[i].copy())
            while len(cache) > self._layout_capacity:
                cache.popitem(last=False)
        layouts = [wanted[clip] for clip in clips.tolist()]
        rows, core = np.stack([r for r, _ in layouts]), np.stack([c for _, c in layouts])
        self._batch_layout = (clips.copy(), rows, core)
        return rows, core

    def _frame_layout(self, clips: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table rows and core flags of every cell of each (clip, frame): 2 x (B, K*K)."""
        rows, core = self._layouts(clips)
        b = np.arange(len(rows))
        return rows[b, frames], core[b, frames]

    # -- features -------------------------------------------------------------------------------
    def glimpse(self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return self.glimpse_on_core(clips, frames, cells)[0]

    def glimpse_on_core(
        self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        rows, core = self._layouts(clips)
        where = (np.arange(len(rows)), np.asarray(frames), np.asarray(cells))
        return self._table[rows[where]], core[where]

    def cube(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        rows, _ = self._frame_layout(clips, frames)
        return self._table[rows].reshape(len(clips), GRID, GRID, self.feature_dim)

    def core_mask(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return self._frame_layout(clips, frames)[1]

    def _require_periphery(self) -> np.ndarray:
        if self._periphery_table is None:
            raise NotImplementedError(f"{self.description} was made with periphery_dim=0: it serves no periphery")
        return self._periphery_table

    def periphery(self, clips: np.ndarray, frames: np.ndarray) -> np.ndarray:
        rows, _ = self._frame_layout(clips, frames)
        # np.take gathers whole rows 3-4x faster than fancy indexing here.
        return np.take(self._require_periphery(), rows, axis=0).reshape(len(clips), GRID, GRID, self.periphery_dim)

    def glimpse_on_core_periphery(
        self, clips: np.ndarray, frames: np.ndarray, cells: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # One layout of all 49 cells serves the periphery, the glimpse and its core flag.
        table = self._require_periphery()
        rows, core = self._frame_layout(clips, frames)
        b = np.arange(len(clips))
        cells = np.asarray(cells)
        return (self._table[rows[b, cells]], core[b, cells],
                np.take(table, rows, axis=0).reshape(len(clips), GRID, GRID, self.periphery_dim))

    def identity(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self.config).items() if not k.endswith("clips_per_class")}
        return {**super().identity(), "weights": "synthetic", "synthetic": data}

    # -- one clip at a time (the single env) ----------------------------------------------------
    def label_set(self, clip: int) -> frozenset[int]:
        return frozenset((clip % self.config.num_classes,))

    def _clip_layout(self, clip: int) -> tuple[np.ndarray, np.ndarray]:
        """Table rows and core flags of every (frame, cell) of one clip: 2 x (T, K*K), memoised for the last
        clip (the single env asks at every step; a plain int comparison is much cheaper than ``_layouts``)."""
        if self._last_clip != clip:
            rows, core = self._layouts(np.array([clip]))
            self._last_clip, self._last_layout = clip, (rows[0], core[0])
        return self._last_layout

    def one_glimpse(self, clip: int, frame: int, cell: int) -> tuple[np.ndarray, bool]:
        rows, core = self._clip_layout(clip)
        return self._table[rows[frame, cell]].copy(), bool(core[frame, cell])  # a copy: never hand out the table

    def one_cube(self, clip: int, frame: int) -> np.ndarray:
        return self._table[self._clip_layout(clip)[0][frame]].reshape(GRID, GRID, self.feature_dim)

    def one_periphery(self, clip: int, frame: int) -> np.ndarray:
        table = self._require_periphery()
        # the method, not np.take: the single env calls this every step and the wrapper costs a third of the gather
        return table.take(self._clip_layout(clip)[0][frame], axis=0).reshape(GRID, GRID, self.periphery_dim)


def _bounce(x: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Position on [0, room] (room >= 1) of a point moving along ``x``, reflecting at both ends, rounded."""
    period = 2 * room
    folded = np.mod(x, period)
    return np.floor(np.where(folded > room, period - folded, folded) + 0.5).astype(np.int64)


def export_synthetic_store(path: str | os.PathLike[str], config: SyntheticConfig | None = None) -> Path:
    """Write every clip of both subsets of the synthetic benchmark as a feature store at ``path``.

    The store also gets ``core.npy`` (the ground-truth core, so focus accuracy works on the file path
    too). Size: clips x T x 49 x D x 2 bytes - about 15 GB for the defaults, so shrink the config for
    anything but a real disk benchmark.
    """
    config = config or SyntheticConfig()
    path = Path(path)
    sources = [SyntheticSource(config, subset) for subset in (TRAIN, TEST)]
    records = [
        ClipRecord(video_id=str(s.video_ids(np.array([i]))[0]), labels=[int(s.labels(np.array([i]))[0])],
                   subset=s.subset, valid_frames=config.frames)
        for s in sources for i in range(s.num_clips)
    ]
    writer = StoreWriter.open(
        path, class_names=sources[0].class_names, records=records, frames=config.frames, grid=GRID,
        feature_dim=config.feature_dim, settings={"backbone": "synthetic", "weights": "synthetic",
                                                  "synthetic_config": asdict(config)},
        with_core=True,
    )
    frames = np.arange(config.frames)
    pending = set(writer.pending_rows())
    row = 0
    for source in sources:
        for clip in range(source.num_clips):
            if row in pending:
                clips = np.full(config.frames, clip)
                writer.write_clip(row, source.cube(clips, frames), valid_frames=config.frames,
                                  core=source.core_mask(clips, frames))
            row += 1
    writer.finalize()
    return path


def calibration_accuracies(
    config: SyntheticConfig | None = None, seed: int = 0, batch: int = 64, periphery_dim: int | None = None
) -> dict[str, float]:
    """Test accuracy of a nearest-class-mean classifier under fixed glimpse policies, and of the periphery.

    The classifier sees the clip average of the glimpsed cells and is fit on the train subset:
    ``oracle`` glimpses one core cell per frame, ``all_cells`` averages all 49 cells of every frame,
    ``random`` glimpses one uniformly random cell per frame, ``saliency`` glimpses the cell whose
    periphery (``envs.periphery``, k = ``periphery_dim``, default ``default_periphery_dim(D)``) scores
    highest under a linear saliency score. That score is a least-squares fit of "is this cell on the
    core?" on the train subset's periphery (the core annotation, never the class labels; a learned policy
    must find it from the reward). ``periphery`` classifies from the clip average (frames and cells) of the
    periphery alone. ``saliency_focus`` is the share of ``saliency`` glimpses on the core.
    The defaults are held to oracle >= 0.9, all_cells <= 0.6, random <= 0.4, periphery <= 0.4 (the
    periphery alone must not classify) and saliency >= 0.9 x oracle (but it must locate the core).
    """
    config = config or SyntheticConfig()
    k = default_periphery_dim(config.feature_dim) if periphery_dim is None else periphery_dim
    rng = np.random.default_rng(seed)
    policies = ("oracle", "all_cells", "random", "saliency", "periphery")
    t, cells = config.frames, GRID * GRID

    def frames_of(source: SyntheticSource, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        clips = np.arange(start, min(start + batch, source.num_clips))
        c, f = np.repeat(clips, t), np.tile(np.arange(t), len(clips))
        rows, core = source._rows_for(c, f)
        return clips, source._table[rows], core, np.take(source._require_periphery(), rows, axis=0)

    def saliency_score(source: SyntheticSource) -> np.ndarray:
        """Least-squares weights (k + 1,) of on-core given the periphery and a constant, on every 4th clip."""
        xtx, xty = np.zeros((k + 1, k + 1)), np.zeros(k + 1)
        for start in range(0, source.num_clips, 4 * batch):
            _, _, core, per = frames_of(source, start)
            x = np.concatenate([per.reshape(-1, k), np.ones((per.shape[0] * cells, 1), np.float32)], 1)
            x = x.astype(np.float64)
            xtx += x.T @ x
            xty += x.T @ core.reshape(-1)
        return np.linalg.solve(xtx + 1e-3 * np.eye(k + 1), xty)

    def clip_features(source: SyntheticSource, weights: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        out = {p: np.zeros((source.num_clips, k if p == "periphery" else config.feature_dim)) for p in policies}
        hits = []
        for start in range(0, source.num_clips, batch):
            clips, cube, core, per = frames_of(source, start)
            n, b = len(clips), np.arange(len(clips) * t)
            picks = {"oracle": core.argmax(axis=1), "random": rng.integers(0, cells, len(b)),
                     "saliency": (per @ weights[:-1].astype(np.float32)).argmax(axis=1)}
            for name, cell in picks.items():
                out[name][clips] = cube[b, cell].reshape(n, t, -1).mean(1)
            hits.append(core[b, picks["saliency"]])
            out["all_cells"][clips] = cube.reshape(n, -1, config.feature_dim).mean(1)
            out["periphery"][clips] = per.reshape(n, -1, k).mean(1)
        return out, float(np.concatenate(hits).mean())

    train = SyntheticSource(config, TRAIN, periphery_dim=k)
    test = SyntheticSource(config, TEST, periphery_dim=k)
    weights = saliency_score(train)
    (train_x, _), (test_x, focus) = clip_features(train, weights), clip_features(test, weights)
    train_y, test_y = train.labels(np.arange(train.num_clips)), test.labels(np.arange(test.num_clips))
    result = {}
    for policy in policies:
        means = np.stack([train_x[policy][train_y == c].mean(0) for c in range(config.num_classes)])
        dist = ((test_x[policy][:, None, :] - means[None]) ** 2).sum(-1)
        result[policy] = float((dist.argmin(1) == test_y).mean())
    result["saliency_focus"] = focus
    return result
