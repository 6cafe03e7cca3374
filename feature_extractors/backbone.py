"""GoogLeNet up to ``inception5b``: weights, preprocessing and the batched forward pass.

Frames arrive as uint8 RGB ``(B, 224, 224, 3)``; the network sees them normalised exactly as
torchvision's ImageNet GoogLeNet expects (ImageNet mean / std, then the model's ``transform_input``
re-mapping, folded into one per-channel scale and shift) and returns the ``inception5b`` output
(ReLU-ed, non-negative) as float16 ``(B, 7, 7, 1024)``: one row of D values per grid cell.

Crop cells (``Backbone.crop_cells``) instead run the network on one square crop per cell, centred on
the cell, and average-pool its ``inception5b`` map: a cell that depends only on its own pixels.
``Backbone.lowres_cells`` runs it once on the frame downscaled (the low-resolution glance of such stores).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import googlenet

from agents.common.devices import DeviceError, check_device

from .decode import resize_frame
from .errors import ExtractionError

IMAGENET_FILE = "googlenet-1378be20.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"
IMAGENET_SHA256_PREFIX = "1378be20"
IMAGENET_IDENTITY = "imagenet:googlenet-1378be20"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
GRID = 7
FEATURE_DIM = 1024
LAYER = "inception5b"
BACKBONE = "torchvision.models.googlenet"
#: Side of a crop cell: the smallest input with a 1 x 1 ``inception5b`` map, up to the whole frame.
MIN_CROP, MAX_CROP = 32, INPUT_SIZE
#: Default crop side. A crop cell sees only its own pixels (no receptive field reaching into its
#: neighbours, unlike a full-frame cell); 64 px covers a rendered actor (34 px across) with room around
#: it at a twelfth of a full frame's FLOPs. Not yet tuned by measurement.
DEFAULT_CROP = 64
#: Side of the low-resolution glance's frame (``--glance lowres``): the 224 px frame downscaled to it.
MIN_GLANCE, MAX_GLANCE = 32, INPUT_SIZE
#: Default glance side: half the frame's, so a quarter of its FLOPs (0.77 GFLOP, about three 64 px crops)
#: and a 4 x 4 ``inception5b`` map; at 96 px the map is 3 x 3, too coarse to tell seven columns apart.
DEFAULT_GLANCE = 112
#: Crops per network call of ``crop_cells`` (bounds the activations' memory; the result does not depend on it).
CROP_CHUNK = 49 * 8
# What the pixels go through before the network; part of the store's settings.
NORMALISATION = "rgb/255, imagenet mean/std, googlenet transform_input"

_TRUNK = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
    "inception5a", "inception5b",
)  # fmt: skip


def imagenet_weights_path() -> Path:
    """Where torchvision keeps (and this tool looks for) the ImageNet file: ``$TORCH_HOME/hub/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


class GoogLeNetTrunk(nn.Module):
    """torchvision's GoogLeNet from the input to ``inception5b`` (no pooling, no classifier).

    Runs the same submodules in the same order as ``GoogLeNet._forward``; the auxiliary heads are only
    used in training and are left out.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for name in _TRUNK:
            self.add_module(name, getattr(model, name))
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # uint8 -> [0, 1] -> (x - mean) / std, then transform_input maps that to x * std / 0.5 + (mean - 0.5) / 0.5.
        scale, shift = 1.0 / (255.0 * std), -mean / std
        if getattr(model, "transform_input", False):
            scale, shift = scale * std / 0.5, shift * std / 0.5 + (mean - 0.5) / 0.5
        self.register_buffer("scale", scale.view(1, 3, 1, 1))
        self.register_buffer("shift", shift.view(1, 3, 1, 1))

    def forward(self, frames: Tensor) -> Tensor:
        """uint8 ``(B, H, W, 3)`` RGB -> ``(B, 1024, H/32, W/32)`` in the module's dtype."""
        x = frames.permute(0, 3, 1, 2)  # (B, 3, H, W) view whose memory is channels-last already
        x = x.to(self.scale.dtype) * self.scale + self.shift
        x = x.contiguous(memory_format=torch.channels_last)
        for name in _TRUNK:
            x = getattr(self, name)(x)
        return x


def check_crop_size(size: int) -> int:
    """``size`` if it is a usable crop side; ``ExtractionError`` with the allowed range otherwise."""
    return _check_side("--crop-size", size, MIN_CROP, MAX_CROP, DEFAULT_CROP)


def check_glance_size(size: int) -> int:
    """``size`` if it is a usable low-resolution glance side; ``ExtractionError`` with the allowed range otherwise."""
    return _check_side("--glance-size", size, MIN_GLANCE, MAX_GLANCE, DEFAULT_GLANCE)


def _check_side(option: str, size: int, least: int, most: int, default: int) -> int:
    """``size`` if ``least <= size <= most`` (pixels of an input the network runs on); else ``ExtractionError``
    naming ``option``, the range and the default."""
    if not least <= size <= most:
        raise ExtractionError(
            f"{option} {size}: use {least}..{most} px (at least {least} for a 1 x 1 {LAYER} map, at most the "
            f"{INPUT_SIZE} px frame); the default is {default}."
        )
    return size


def crop_starts(size: int, frame: int = INPUT_SIZE, grid: int = GRID) -> list[int]:
    """First pixel (row or column) of the crop of each grid line: centred on the cell's centre
    ``(i + 0.5) * frame / grid``, shifted to stay inside the frame."""
    step = frame / grid
    return [min(max(int((i + 0.5) * step) - size // 2, 0), frame - size) for i in range(grid)]


def trunk_flops(trunk: nn.Module, size: int) -> int:
    """FLOPs (2 x multiply-adds, as ``FlopCounterMode`` counts them) of one ``size`` x ``size`` input."""
    device = next(trunk.parameters()).device
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        trunk(torch.zeros((1, size, size, 3), dtype=torch.uint8, device=device))
    return int(counter.get_total_flops())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_state_dict(path: Path) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ExtractionError(
            f"Cannot read weights file '{path}' ({type(err).__name__}: {err}). It should be torchvision's "
            f"{IMAGENET_FILE} (from {IMAGENET_URL}) or another GoogLeNet state_dict saved with torch.save."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ExtractionError(f"'{path}' does not hold a state_dict (a dict of tensors); save one with torch.save.")
    # aux heads are not needed for features; accept files with or without them
    state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    model = googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # tensors of the wrong shape
        raise ExtractionError(f"'{path}' is not a torchvision GoogLeNet state_dict: {err}") from None
    if missing or unexpected:
        raise ExtractionError(
            f"'{path}' is not a torchvision GoogLeNet state_dict: {len(missing)} missing key(s) "
            f"{missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}."
        )
    return model


def load_googlenet(weights: str = "imagenet", seed: int = 0) -> tuple[nn.Module, str, list[str]]:
    """Build GoogLeNet with ``weights``: ``"imagenet"``, ``"random"``, or a path to a state_dict file.

    ``"random"`` is torchvision's GoogLeNet seeded with ``seed``, its conv weights drawn Kaiming-normal.
    Returns the model, the weights identity written to the store (``"imagenet:googlenet-1378be20"``,
    ``"random-init:seed=N"`` or ``"file:<name>:sha256=<prefix>"``) and notes for the user.
    """
    notes: list[str] = []
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True)
            # Not torchvision's init_weights (std 0.01): it shrinks activations ~10x per layer, so
            # inception5b would be all 0 in float16. Variance-preserving (Kaiming) conv weights keep the
            # features informative; batch norms keep PyTorch's identity init (weight 1, bias 0).
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        return model, f"random-init:seed={seed}", notes
    if weights == "imagenet":
        path = imagenet_weights_path()
        if not path.is_file():
            raise ExtractionError(
                f"ImageNet GoogLeNet weights are not on disk. Download {IMAGENET_URL} (on any machine with "
                f"internet) and put the file at exactly:\n  {path}\n(that is $TORCH_HOME/hub/checkpoints/; set "
                "TORCH_HOME to use another folder), or pass --weights <path to the .pth file>. "
                "For offline trials without those weights use --weights random (features are then not ImageNet ones)."
            )
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ExtractionError(
                f"--weights '{weights}': no such file. Pass 'imagenet', 'random', or the path of a GoogLeNet "
                f"state_dict such as {IMAGENET_FILE}."
            )
    model = _load_state_dict(path)
    digest = _file_sha256(path)
    if digest.startswith(IMAGENET_SHA256_PREFIX):
        identity = IMAGENET_IDENTITY
    else:
        identity = f"file:{path.name}:sha256={digest[:16]}"
        notes.append(
            f"'{path}' is not torchvision's published ImageNet file (its sha256 does not start with "
            f"{IMAGENET_SHA256_PREFIX}); the store records the weights as '{identity}'."
        )
    return model, identity, notes


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ExtractionError(f"--device {device!r}: choose auto, cpu or cuda.")
    try:
        check_device(device)  # the same availability check as training and evaluation
    except DeviceError as exc:
        raise ExtractionError(f"{exc} (or auto)") from None
    return torch.device(device)


@dataclass
class Backbone:
    """A ready-to-run feature network: call it on a uint8 ``(B, 224, 224, 3)`` batch."""

    trunk: GoogLeNetTrunk
    identity: str
    device: torch.device
    notes: list[str]

    @classmethod
    def build(cls, weights: str = "imagenet", seed: int = 0, device: str = "auto") -> Backbone:
        """Load the weights and move the trunk to ``device``: channels-last, eval, half precision on CUDA."""
        dev = resolve_device(device)
        model, identity, notes = load_googlenet(weights, seed)
        return cls.from_trunk(GoogLeNetTrunk(model), identity, dev, notes)

    @classmethod
    def from_trunk(
        cls, trunk: GoogLeNetTrunk, identity: str, device: torch.device, notes: list[str] | None = None
    ) -> Backbone:
        """A loaded trunk (for instance one shipped to a Ray worker) made ready on ``device``."""
        trunk = trunk.eval().to(device, memory_format=torch.channels_last)
        if device.type == "cuda":
            trunk = trunk.half()
            torch.backends.cudnn.benchmark = True  # batches have one fixed shape
        return cls(trunk, identity, device, list(notes or []))

    @torch.inference_mode()
    def __call__(self, frames: Tensor) -> Tensor:
        """uint8 ``(B, H, W, 3)`` -> float16 ``(B, H/32, W/32, 1024)`` on the CPU."""
        out = self.trunk(frames.to(self.device, non_blocking=True))
        return out.permute(0, 2, 3, 1).to(torch.float16).cpu()

    @torch.inference_mode()
    def crop_cells(self, frames: Tensor, size: int) -> Tensor:
        """uint8 ``(B, 224, 224, 3)`` -> float16 ``(B, 7, 7, 1024)`` on the CPU: cell (i, j) is the
        global-average-pooled ``inception5b`` output of the ``size`` px crop centred on it (``crop_starts``).

        The 49 crops of every frame go through the network together, ``CROP_CHUNK`` crops at a time.
        """
        b, h, w = frames.shape[:3]
        if h != INPUT_SIZE or w != INPUT_SIZE:
            raise ValueError(f"crop cells take {INPUT_SIZE} x {INPUT_SIZE} frames, got {h} x {w}")
        starts = crop_starts(size)
        x = frames.to(self.device, non_blocking=True)
        rows = torch.stack([x[:, a : a + size] for a in starts], 1)  # (B, 7, size, W, 3)
        crops = torch.stack([rows[:, :, :, a : a + size] for a in starts], 2).reshape(-1, size, size, 3)
        pooled = [self.trunk(chunk).float().mean(dim=(2, 3)) for chunk in crops.split(CROP_CHUNK)]
        return torch.cat(pooled).reshape(b, GRID, GRID, FEATURE_DIM).to(torch.float16).cpu()

    @torch.inference_mode()
    def crop_cell(self, frame: Tensor, size: int, cell: int) -> Tensor:
        """Cell ``cell`` (row-major) of ``crop_cells`` for one uint8 ``(224, 224, 3)`` frame, float16 ``(1024,)``,
        computed from that one crop: what a policy attending one cell per frame runs."""
        row, col = divmod(cell, GRID)
        starts = crop_starts(size)
        crop = frame[starts[row] : starts[row] + size, starts[col] : starts[col] + size]
        out = self.trunk(crop[None].to(self.device, non_blocking=True)).float().mean(dim=(2, 3))
        return out[0].to(torch.float16).cpu()

    @torch.inference_mode()
    def lowres_cells(self, frames: Tensor, size: int) -> Tensor:
        """uint8 ``(B, H, W, 3)`` -> float32 ``(B, 7, 7, 1024)`` on the CPU: the ``inception5b`` map of each
        frame downscaled to ``size`` px (``decode.resize_frame``), adaptive-average-pooled to the 7 x 7 grid.

        The low-resolution glance of crop-cell stores: one cheap pass over the whole frame (at 112 px a
        4 x 4 map, each grid cell averaging the map positions it overlaps).
        """
        small = np.stack([resize_frame(frame, size) for frame in frames.numpy()])
        out = self.trunk(torch.from_numpy(small).to(self.device, non_blocking=True)).float()
        return functional.adaptive_avg_pool2d(out, GRID).permute(0, 2, 3, 1).cpu()
