"""The glimpse network shared by all of our agents (paper section II, Fig. 1).

One module, four parts, run either one step at a time (rollouts, evaluation) or over whole
fixed-length episodes at once (training):

1. **Glimpse encoder.** The attended input of step ``t`` is ``X'_t = sum_i w_{t,i} X_{t,i}`` (paper
   eq. 3) together with *where* it came from, the weights ``w_t`` over the ``K*K`` cells. A hard glimpse
   makes ``w_t`` one-hot (the paper's agent; with ``m`` glimpses per frame it is the running sum of the
   frame's glimpses so far), soft attention makes it a softmax (Sharma et al. 2015), mean pooling makes it
   uniform. ``g_t = relu(LayerNorm(W_x norm(X'_t)) + W_w w_t + W_p progress_t)``, where ``norm``
   standardises every channel with running statistics of the observed cells (kept in the network's buffers
   and updated by the learner, never by gradients). Without it the class head sits on a long plateau: the
   features share a large common component and the class evidence is a small offset on top of it. With
   ``encode_periphery`` the encoding also adds ``W_q norm(sum_i w_i P_{t,i})``, the periphery of the
   attended cell(s): with the env's ``periphery_motion``, whether the cell looked at was moving, which is
   what tells an actor marked only by its motion from a still distractor that looks the same.
2. **Memory core.** A multi-layer LSTM over ``g_1..g_t`` (paper: 3 layers x 512 units).
3. **Heads** on the memory state ``h_t``:
   - location head, the policy over the next glimpse's cell: ``logits_i = X_{t,i} . q(h_t) / sqrt(D)
     + p(h_t)_i``. With the whole frame observed (``observation_mode="cube"``) it scores every cell of the
     cube against a query computed from memory (content-based attention); without the cube only the
     spatial term ``p(h_t)`` remains. With the peripheral view (``periphery``, k values per cell, see
     ``envs.periphery``) a second content term scores every cell's standardised periphery vector against its
     own query, ``P_{t,i} . q_p(h_t) / sqrt(k)``: a glimpse-mode agent sees where to look without reading the
     cube, while its glimpse content still comes only from the cell it looked at. ``saliency_prior``
     initialises the queries' biases to a positive constant, so an untrained policy already prefers cells
     with more (standardised) activation, a
     bottom-up saliency cue; it is learned like every other parameter. Without it a REINFORCE agent can
     deadlock: the class head learns nothing from random glimpses, so the reward says nothing about
     where to look;
   - class head: dropout, a tanh hidden layer, dropout, class logits (softmax, as in the paper);
   - value head: a linear baseline / critic, optionally on a detached ``h_t`` so that it does not shape
     the memory (REINFORCE's learned baseline);
   - stop head (envs with ``early_exit``): two logits, continue or stop, from the detached ``h_t`` and the
     class head's confidence (its largest probability and its entropy), since "stop once sure" is a
     function of how sure the class head is. Its bias starts at ``STOP_BIAS`` against stopping, so an
     untrained policy watches most of a clip.

Dropout sits only in the class head, so the location policy that a rollout samples from is exactly the
one the learner differentiates (the paper does not say where its dropout goes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

InputMode = Literal["glimpse", "soft", "mean"]
NUM_CELLS = 49
#: Initial logit of "stop" minus "continue": a stop chance of about 2 % per step, so an untrained agent
#: watches most of a clip, and the stop head's gradient (proportional to that chance) is not yet vanishing.
STOP_BIAS = -4.0


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of a :class:`GlimpseNetwork`.

    :param feature_dim: D, the length of one cell's feature vector.
    :param num_classes: C.
    :param input_mode: ``"glimpse"`` (hard glimpses from the observation), ``"soft"`` (soft attention over
        the cube, weights from the previous step's location head) or ``"mean"`` (uniform weights).
    :param use_cube: score the cells of the observed cube in the location head (needs the ``cube`` entry).
    :param glimpses_per_frame: m; a hard-glimpse step feeds the sum of the frame's glimpses so far.
    :param embed_dim: width of the glimpse encoding ``g_t``.
    :param hidden_size: LSTM units per layer (paper: 512).
    :param num_layers: LSTM layers (paper: 3).
    :param class_hidden: width of the class head's tanh layer (paper: 512).
    :param dropout: dropout probability in the class head (paper: 0.5).
    :param detach_value: compute the value from ``h_t.detach()``.
    :param saliency_prior: initial bias of the location query (0: none; the paper has none).
    :param num_cells: K*K.
    :param periphery_dim: k of the ``periphery`` observation the location head scores (0: none).
    :param encode_periphery: the glimpse encoding also gets the periphery of the attended cell(s)
        (``w_t``-weighted, standardised), so memory knows what the peripheral view said where it looked: with
        ``periphery_motion`` whether that cell was moving, the one cue that tells an actor marked only by
        moving from a still distractor of the same look. Needs ``periphery_dim``.
    :param early_exit: a stop head (the env's ``early_exit``).
    :param content_dropout: in training, the share of steps whose attended content (the glimpse's D values)
        is dropped from the encoding, leaving where it was and the periphery: a class made by *how* the actor
        moves must then be read from the glimpse path, not from the look of clips the head can memorise.
    """

    feature_dim: int
    num_classes: int
    input_mode: InputMode = "glimpse"
    use_cube: bool = True
    glimpses_per_frame: int = 1
    embed_dim: int = 512
    hidden_size: int = 512
    num_layers: int = 3
    class_hidden: int = 512
    dropout: float = 0.5
    detach_value: bool = False
    saliency_prior: float = 0.0
    num_cells: int = NUM_CELLS
    periphery_dim: int = 0
    encode_periphery: bool = False
    early_exit: bool = False
    content_dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def reads_cube(self) -> bool:
        """Whether the network reads every cell of a frame (the ``cube`` entry), not its glimpses only."""
        return self.use_cube or self.input_mode != "glimpse"


class NetState(NamedTuple):
    """Recurrent state carried between single steps.

    ``h``/``c``: (num_layers, B, H). ``frame_x``: (B, D) and ``frame_w``: (B, K*K), the running sum of the
    current frame's glimpses (hard mode). ``next_weights``: (B, K*K), the soft attention weights for the
    next step (soft mode).
    """

    h: torch.Tensor
    c: torch.Tensor
    frame_x: torch.Tensor
    frame_w: torch.Tensor
    next_weights: torch.Tensor


class NetOutput(NamedTuple):
    """Per-step outputs, each with leading dims (L, B).

    ``location_logits`` (L, B, K*K), ``class_logits`` (L, B, C), ``value`` (L, B), ``weights`` (L, B, K*K)
    the cell weights ``w_t`` of the input actually fed at each step, ``stop_logits`` (L, B, 2) [continue,
    stop] with ``early_exit``, else None.
    """

    location_logits: torch.Tensor
    class_logits: torch.Tensor
    value: torch.Tensor
    weights: torch.Tensor
    stop_logits: torch.Tensor | None = None


@torch.no_grad()
def fold_moments(mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor, x: torch.Tensor) -> None:
    """Fold samples ``x`` (..., F) into running per-feature moments ``mean``/``var`` (F,) over ``count`` (a
    0-d float64 tensor) samples so far, in place (Chan et al.'s parallel update)."""
    x = x.reshape(-1, mean.shape[-1]).to(mean.dtype)
    n = x.shape[0]
    if n == 0:
        return
    batch_mean = x.mean(0)
    batch_var = ((x * x).mean(0) - batch_mean * batch_mean).clamp(min=0.0)  # (3x faster than var_mean on CPU)
    old = float(count)
    total = old + n
    delta = batch_mean - mean
    m2 = var * old + batch_var * n + delta**2 * old * (n / total)
    mean += delta * (n / total)
    var.copy_(m2 / total)
    count.fill_(total)


class RunningMoments:
    """Running mean and variance of a scalar stream (the returns a critic predicts), kept as tensors so a
    checkpoint restores them exactly. ``normalize`` maps values to (x - mean) / std; ``denormalize`` back."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.mean = torch.zeros(1, device=device)
        self.var = torch.ones(1, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def fold(self, x: torch.Tensor) -> None:
        fold_moments(self.mean, self.var, self.count, x.reshape(-1, 1))

    @property
    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var + 1e-8)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.mean, self.var, self.count

    def load_state(self, saved: tuple[torch.Tensor, ...]) -> None:
        for mine, value in zip(self.state(), saved, strict=True):
            mine.copy_(value)


def _cells(cube: torch.Tensor) -> torch.Tensor:
    """(..., K, K, D) -> (..., K*K, D), row-major like the env's cell index."""
    return cube.flatten(-3, -2)


class GlimpseNetwork(nn.Module):
    """Glimpse encoder -> LSTM core -> location / class / value heads. See the module docstring."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        if config.input_mode not in ("glimpse", "soft", "mean"):
            raise ValueError(f"input_mode must be 'glimpse', 'soft' or 'mean', not {config.input_mode!r}")
        self.config = config
        d, e, h, k = config.feature_dim, config.embed_dim, config.hidden_size, config.num_cells
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_var", torch.ones(d))
        self.register_buffer("input_count", torch.zeros((), dtype=torch.float64))
        self.feature_proj = nn.Linear(d, e)
        self.feature_norm = nn.LayerNorm(e)
        self.where_proj = nn.Linear(k, e, bias=False)
        self.progress_proj = nn.Linear(2, e, bias=False)
        self.lstm = nn.LSTM(e, h, num_layers=config.num_layers)
        self.query = nn.Linear(h, d) if config.use_cube else None
        p = config.periphery_dim
        self.periphery_query = nn.Linear(h, p) if p else None
        if p:  # running per-value statistics of the periphery, like the cells' (learner-updated buffers)
            self.register_buffer("periphery_mean", torch.zeros(p))
            self.register_buffer("periphery_var", torch.ones(p))
            self.register_buffer("periphery_count", torch.zeros((), dtype=torch.float64))
        self.periphery_proj = nn.Linear(p, e, bias=False) if p and config.encode_periphery else None
        self.spatial = nn.Linear(h, k)
        self.class_head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(h, config.class_hidden),
            nn.Tanh(),
            nn.Dropout(config.dropout),
            nn.Linear(config.class_hidden, config.num_classes),
        )
        self.value_head = nn.Linear(h, 1)
        self.stop_head = nn.Linear(h + 2, 2) if config.early_exit else None
        if self.stop_head is not None:
            nn.init.normal_(self.stop_head.weight, std=0.01)
            nn.init.constant_(self.stop_head.bias, 0.0)
            with torch.no_grad():
                self.stop_head.bias[1] = STOP_BIAS
        # Start with a near-uniform location policy and a zero baseline.
        for layer in (self.spatial, self.value_head, self.query, self.periphery_query):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.zeros_(layer.bias)
        for query in (self.query, self.periphery_query):
            if query is not None:
                nn.init.constant_(query.bias, config.saliency_prior)

    def location_parameters(self) -> list[nn.Parameter]:
        """Parameters of the location head (what REINFORCE's term alone trains)."""
        return self.parameter_parts()["location"]

    def stop_parameters(self) -> list[nn.Parameter]:
        """Parameters of the stop head (none without ``early_exit``)."""
        return self.parameter_parts()["stop"]

    def parameter_parts(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each part (encoder, memory, location, class, value), for per-part gradient
        norms in TensorBoard and per-part learning rates."""
        parts = {
            "encoder": (self.feature_proj, self.feature_norm, self.where_proj, self.progress_proj, self.periphery_proj),
            "memory": (self.lstm,),
            "location": (self.spatial, self.query, self.periphery_query),
            "class": (self.class_head,),
            "value": (self.value_head,),
            "stop": (self.stop_head,),
        }
        return {name: [p for m in mods if m is not None for p in m.parameters()] for name, mods in parts.items()}

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int, device: torch.device | str | None = None) -> NetState:
        cfg = self.config
        device = device if device is not None else self.feature_proj.weight.device
        zeros = torch.zeros(cfg.num_layers, batch, cfg.hidden_size, device=device)
        return NetState(
            h=zeros,
            c=zeros.clone(),
            frame_x=torch.zeros(batch, cfg.feature_dim, device=device),
            frame_w=torch.zeros(batch, cfg.num_cells, device=device),
            next_weights=torch.full((batch, cfg.num_cells), 1.0 / cfg.num_cells, device=device),
        )

    # ------------------------------------------------------------------ input statistics
    def update_input_stats(self, cells: torch.Tensor) -> None:
        """Fold feature vectors (..., D) into the running per-channel mean and variance."""
        fold_moments(self.input_mean, self.input_var, self.input_count, cells)

    def input_scale(self) -> torch.Tensor:
        """1 / per-channel standard deviation, (D,)."""
        return torch.rsqrt(self.input_var + 1e-6)

    def update_periphery_stats(self, periphery: torch.Tensor) -> None:
        """Fold periphery vectors (..., k) into their running mean and variance (no-op without a periphery)."""
        if self.periphery_query is not None:
            fold_moments(self.periphery_mean, self.periphery_var, self.periphery_count, periphery)

    # ------------------------------------------------------------------ parts
    def encode(
        self, x: torch.Tensor, w: torch.Tensor, progress: torch.Tensor, periphery: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attended input (..., D), cell weights (..., K*K), progress (..., 2) and, with ``encode_periphery``,
        the frame's periphery (..., K, K, k) -> g (..., E).

        ``x = sum_i w_i X_i``, so standardising every cell equals ``(x - sum(w) * mean) / std``.
        """
        x = (x - w.sum(-1, keepdim=True) * self.input_mean) * self.input_scale()
        content = self.feature_norm(self.feature_proj(x))
        if self.training and self.config.content_dropout > 0:
            keep = torch.rand((*content.shape[:-1], 1), device=content.device) >= self.config.content_dropout
            content = content * keep
        g = content + self.where_proj(w) + self.progress_proj(progress)
        if self.periphery_proj is not None:
            if periphery is None:
                raise ValueError("this network encodes the periphery (encode_periphery=True) but got no 'periphery'")
            seen = torch.matmul(w.unsqueeze(-2), _cells(periphery)).squeeze(-2)  # (..., k): the attended cells'
            seen = (seen - w.sum(-1, keepdim=True) * self.periphery_mean) * torch.rsqrt(self.periphery_var + 1e-6)
            g = g + self.periphery_proj(seen)
        return torch.relu(g)

    def location_logits(
        self, h: torch.Tensor, cube: torch.Tensor | None, periphery: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Memory (..., H), the current frame (..., K, K, D) or None and its periphery (..., K, K, k) or None
        -> logits (..., K*K)."""
        logits = self.spatial(h)
        if self.periphery_query is not None:
            if periphery is None:
                raise ValueError(
                    f"this network scores the periphery (periphery_dim={self.config.periphery_dim}) but got no "
                    "'periphery' observation: make the env with the same periphery_dim"
                )
            # As for the cube: the mean cancels in the softmax, the scale goes on the query.
            qp = self.periphery_query(h) * torch.rsqrt(self.periphery_var + 1e-6)  # (..., k)
            seen = torch.matmul(qp.unsqueeze(-2), _cells(periphery).transpose(-1, -2)).squeeze(-2)
            logits = logits + seen / math.sqrt(self.config.periphery_dim)
        if self.query is not None:
            if cube is None:
                raise ValueError("this network scores cube cells (use_cube=True) but got no 'cube' observation")
            # Scoring standardised cells: the mean term is the same for every cell and cancels in the
            # softmax, so only the per-channel scale is applied (to the query, not to the cube).
            q = self.query(h) * self.input_scale()  # (..., D)
            # (..., 1, D) @ (..., D, K*K): as a row vector times the cells (not the cells times a column), both
            # this product and its gradient for q stream the cube in memory order, 2-15x faster on CPU.
            content = torch.matmul(q.unsqueeze(-2), _cells(cube).transpose(-1, -2)).squeeze(-2)
            logits = logits + content / math.sqrt(self.config.feature_dim)
        return logits

    def heads(
        self, h: torch.Tensor, cube: torch.Tensor | None, periphery: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Memory (..., H) -> location logits (..., K*K), class logits (..., C), value (...), stop logits
        (..., 2) or None."""
        value_in = h.detach() if self.config.detach_value else h
        class_logits = self.class_head(h)
        return (
            self.location_logits(h, cube, periphery),
            class_logits,
            self.value_head(value_in).squeeze(-1),
            self.stop_logits(h, class_logits),
        )

    def stop_logits(self, h: torch.Tensor, class_logits: torch.Tensor) -> torch.Tensor | None:
        """[continue, stop] logits (..., 2) from the detached memory and the class head's confidence (its
        largest probability and entropy): the stop policy reads the other heads, it does not shape them."""
        if self.stop_head is None:
            return None
        logp = torch.log_softmax(class_logits.detach(), -1)
        confidence = torch.stack([logp.max(-1).values.exp(), -(logp.exp() * logp).sum(-1)], -1)
        return self.stop_head(torch.cat([h.detach(), confidence], -1))

    # ------------------------------------------------------------------ forward
    def forward(
        self, obs: dict[str, torch.Tensor], state: NetState | None = None
    ) -> tuple[NetOutput, NetState]:
        """Run L steps. ``obs`` entries have leading dims (L, B): ``glimpse`` (L, B, D), ``location``
        (L, B) int, ``progress`` (L, B, 2), ``cube`` (L, B, K, K, D) and ``periphery`` (L, B, K, K, k) when
        present. ``state`` None means
        the start of an episode. Hard-glimpse and mean modes run the LSTM over the whole sequence at once;
        soft attention depends on the previous step's output and loops over time."""
        progress = obs["progress"]
        batch = progress.shape[1]
        if state is None:
            state = self.initial_state(batch, progress.device)
        cube = obs.get("cube")
        mode = self.config.input_mode
        if mode == "soft":
            return self._forward_soft(obs, state)
        if mode == "mean":
            if cube is None:
                raise ValueError("input_mode='mean' needs the 'cube' observation (observation_mode='cube')")
            cells = _cells(cube)  # (L, B, K*K, D)
            x = cells.mean(-2)
            w = torch.full(cells.shape[:-1], 1.0 / self.config.num_cells, device=x.device)
            frame_x, frame_w = state.frame_x, state.frame_w
        else:
            x, w, frame_x, frame_w = self._frame_sums(obs, state)
        g = self.encode(x, w, progress, obs.get("periphery"))  # (L, B, E)
        out, (h_n, c_n) = self.lstm(g, (state.h, state.c))  # out: (L, B, H)
        loc, cls, val, stop = self.heads(out, cube, obs.get("periphery"))
        new_state = NetState(h_n, c_n, frame_x, frame_w, state.next_weights)
        return NetOutput(loc, cls, val, w, stop), new_state

    def _frame_sums(
        self, obs: dict[str, torch.Tensor], state: NetState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hard glimpses: X'_t and w_t as running sums over the current frame's glimpses."""
        glimpse = obs["glimpse"]  # (L, B, D)
        onehot = nn.functional.one_hot(obs["location"].long(), self.config.num_cells).to(glimpse.dtype)
        if self.config.glimpses_per_frame == 1:
            return glimpse, onehot, state.frame_x, state.frame_w
        # A new frame starts where the glimpse index within the frame (progress[..., 1]) is 0.
        new_frame = (obs["progress"][..., 1] == 0).unsqueeze(-1)  # (L, B, 1)
        xs, ws = [], []
        fx, fw = state.frame_x, state.frame_w
        for t in range(glimpse.shape[0]):
            fx = torch.where(new_frame[t], 0.0, fx) + glimpse[t]
            fw = torch.where(new_frame[t], 0.0, fw) + onehot[t]
            xs.append(fx)
            ws.append(fw)
        return torch.stack(xs), torch.stack(ws), fx, fw

    def _forward_soft(self, obs: dict[str, torch.Tensor], state: NetState) -> tuple[NetOutput, NetState]:
        """Soft attention: step t attends with the weights the location head gave at step t-1 (the first
        step with uniform weights), so the LSTM runs one step at a time."""
        cube = obs.get("cube")
        if cube is None:
            raise ValueError("input_mode='soft' needs the 'cube' observation (observation_mode='cube')")
        cells = _cells(cube)  # (L, B, K*K, D)
        periphery = obs.get("periphery")
        h, c, w = state.h, state.c, state.next_weights
        outs: list[tuple[torch.Tensor, ...]] = []
        for t in range(cells.shape[0]):
            x = torch.matmul(w.unsqueeze(-2), cells[t]).squeeze(-2)  # (B, 1, K*K) @ (B, K*K, D) -> (B, D)
            g = self.encode(x, w, obs["progress"][t], None if periphery is None else periphery[t])
            top, (h, c) = self.lstm(g.unsqueeze(0), (h, c))  # top: (1, B, H)
            loc, cls, val, stop = self.heads(top[0], cube[t], None if periphery is None else periphery[t])
            outs.append((loc, cls, val, w, stop))
            w = torch.softmax(loc, dim=-1)
        loc, cls, val, ws, stops = zip(*outs, strict=True)
        stop_logits = None if stops[0] is None else torch.stack(stops)
        return (NetOutput(torch.stack(loc), torch.stack(cls), torch.stack(val), torch.stack(ws), stop_logits),
                NetState(h, c, state.frame_x, state.frame_w, w))
