"""Command line: ``python -m feature_extractors {hmdb51,activitynet,videos,render,merge,add-periphery} ...``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.common.cluster import ClusterError
from envs.files import FolderInUseError, refuse_if_locked
from envs.store import StoreError, add_periphery, remove_store

from . import datasets
from .backbone import (
    DEFAULT_CROP,
    DEFAULT_GLANCE,
    IMAGENET_FILE,
    MAX_CROP,
    MAX_GLANCE,
    MIN_CROP,
    MIN_GLANCE,
    check_crop_size,
    check_glance_size,
    imagenet_weights_path,
)
from .datasets import ClipList
from .errors import ExtractionError
from .extract import ExtractOptions, Shard, default_workers, extract
from .merge import merge
from .render import VARIANTS, RenderSpec, extract_command, render

DEFAULT_FPS = 10.0
MAX_REPORT_LINES = 25

DESCRIPTION = f"""\
Turn videos into GoogLeNet feature stores for the glimpse environments.

Every clip becomes T frames (default 30) resized to 224 x 224 and pushed through torchvision's GoogLeNet;
the inception5b output (7 x 7 cells x 1024 channels) of each frame is stored as float16 in a feature
store folder (features.npy, index.jsonl, meta.json) that HMDB51Glimpse-v0, ActivityNetGlimpse-v0 and
StoreGlimpse-v0 read with data_root=<store>, with periphery.npy beside it: the peripheral view of every cell
(channel-group means, envs/periphery.py) that glimpse-mode agents read instead of the cube. Stores written
before it existed get it with `add-periphery`.

Weights: --weights imagenet (default) needs torchvision's {IMAGENET_FILE} in
  {imagenet_weights_path()}
(download it once from https://download.pytorch.org/models/{IMAGENET_FILE}), or --weights <file>.
--weights random uses a seeded random network (for trials; meta.json says so).

An interrupted run resumes when you run the same command again. Videos that cannot be decoded are
listed in <store>/failures.jsonl and the run goes on.
"""

EXAMPLES = """\
examples:
  python -m feature_extractors hmdb51 --videos hmdb51_org --splits testTrainMulti_7030_splits --out data/hmdb51
  python -m feature_extractors activitynet --videos anet_videos --annotations activity_net.v1-3.min.json \\
      --out data/activitynet
  python -m feature_extractors videos --list my_videos.txt --classes my_classes.txt --out data/mine
  # four machines share one dataset, then join the parts:
  python -m feature_extractors hmdb51 ... --shard 0/4 --out part0     (1/4, 2/4, 3/4 elsewhere)
  python -m feature_extractors merge --out data/hmdb51 part0 part1 part2 part3
  # or one command over a Ray cluster (ray start --head on one machine, ray start --address=... on the others):
  python -m feature_extractors hmdb51 ... --out data/hmdb51 --ray HEAD:6379
  # a store written before the periphery existed:
  python -m feature_extractors add-periphery --store data/hmdb51
  # no dataset at hand: render one (with actor boxes), then extract it with the command it prints
  python -m feature_extractors render --variant moving --out data/rendered-moving
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ExtractionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_common(parser: argparse.ArgumentParser, default_fps: float | None) -> None:
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder to create or resume")
    group = parser.add_argument_group("frames")
    group.add_argument(
        "--frames",
        "-T",
        type=_positive_int,
        default=30,
        metavar="T",
        help="frames per clip (default: 30, as in the paper)",
    )
    rate = group.add_mutually_exclusive_group()
    fps_default = f"{default_fps:g}" if default_fps else "none: spread T frames over the whole video"
    rate.add_argument(
        "--fps",
        type=_positive_float,
        default=default_fps,
        help=f"sample frames at this fixed rate from the start of each video (default: {fps_default}); "
        "clips shorter than T/fps seconds are padded by repeating their last frame",
    )
    rate.add_argument(
        "--spread",
        dest="fps",
        action="store_const",
        const=None,
        help="spread the T frames evenly over each whole video instead of a fixed rate",
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|random|PATH",
        help="imagenet (default; torchvision's file from $TORCH_HOME/hub/checkpoints), random "
        "(seeded random init, for tests and offline trials), or a GoogLeNet state_dict file",
    )
    net.add_argument("--seed", type=int, default=0, help="seed of --weights random, in [0, 2**32) (default: 0)")
    net.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto (default): CUDA when available (half precision), else CPU",
    )
    net.add_argument(
        "--cells",
        default="full",
        choices=["full", "crop"],
        help="full (default): the 7 x 7 cells of the whole frame's inception5b map; crop: each cell is the pooled "
        "inception5b output of a square crop centred on it (its own pixels only), and the store's periphery is "
        "a glance (--glance)",
    )
    net.add_argument(
        "--crop-size",
        type=int,
        default=None,
        metavar="PX",
        help=f"side of a crop cell in pixels of the 224 px frame, {MIN_CROP}..{MAX_CROP} (default: {DEFAULT_CROP}); "
        "with --cells crop",
    )
    net.add_argument(
        "--glance",
        default=None,
        choices=["motion", "lowres"],
        help="the periphery of a --cells crop store: motion (default; per-cell pixel motion energy, k = 1, "
        "about 0.4 MFLOP a frame) or lowres (the network on the frame downscaled to --glance-size px, pooled to "
        "7 x 7, 64 channel-group means per cell)",
    )
    net.add_argument(
        "--glance-size",
        type=int,
        default=None,
        metavar="PX",
        help=f"side of the lowres glance's frame, {MIN_GLANCE}..{MAX_GLANCE} (default: {DEFAULT_GLANCE}, a quarter "
        "of a full frame's FLOPs); with --glance lowres",
    )
    net.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="frames per network batch; batches span clips (default: 128 on CUDA, 32 on CPU)",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--workers",
        type=_non_negative_int,
        default=None,
        help=f"decoding processes (default here: {default_workers()}; 0 decodes in the main process)",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="process only shard I of N (clips I, I+N, ...); join the N stores with `merge`",
    )
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    truth = parser.add_argument_group("ground truth")
    truth.add_argument(
        "--actors",
        default=None,
        metavar="JSON",
        help="actor boxes of every video (format: {'format': 'actor-boxes/v1', 'videos': {video_id: {'width', "
        "'height', 'frames', 'boxes': one list of [x0, y0, x1, y1] pixel boxes per decoded frame}}}; `render` "
        "writes one): the store gets core.npy, the cells each sampled frame's actor covers, for focus accuracy "
        "and the oracle baseline",
    )
    cluster = parser.add_argument_group("Ray (needs the [ray] extra)")
    cluster.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="distribute the clips over Ray: decoding as tasks, GoogLeNet in one actor per GPU (else CPU actors), "
        "the store written here. ADDRESS: a head node's HOST:PORT (`ray start --head`) or auto; without it "
        "$RAY_ADDRESS, else local Ray on this machine. --workers does not apply",
    )
    cluster.add_argument(
        "--ray-actors",
        type=_positive_int,
        default=None,
        metavar="N",
        help="network actors (default: one per GPU of the cluster, else 1 CPU actor)",
    )
    cluster.add_argument(
        "--ray-threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="torch threads of each CPU actor (default: all cores of its node)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feature_extractors",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{hmdb51,activitynet,videos,render,merge,add-periphery}"
    )

    p = sub.add_parser(
        "hmdb51",
        help="HMDB-51: every clip of the class folders, with official splits 1-3",
        description="Extract every clip of HMDB-51. Labels index the sorted class folder names; train/test/unused "
        "membership in splits 1, 2 and 3 comes from the official split files (70 train / 30 test per class "
        "and file is checked; anything else is reported). Env: HMDB51Glimpse-v0(data_root=STORE, split=1..3).",
        epilog="example: python -m feature_extractors hmdb51 --videos hmdb51_org "
        "--splits testTrainMulti_7030_splits --out data/hmdb51",
    )
    p.add_argument("--videos", required=True, metavar="DIR", help="folder holding the 51 class folders of .avi clips")
    p.add_argument(
        "--splits",
        required=True,
        metavar="DIR",
        help="folder of the <class>_test_split<1|2|3>.txt files (testTrainMulti_7030_splits)",
    )
    _add_common(p, DEFAULT_FPS)

    p = sub.add_parser(
        "activitynet",
        help="ActivityNet (v1.3 annotation JSON): untrimmed, multi-label, with segments",
        description="Extract the videos of the chosen subsets of an ActivityNet annotation file. Labels are all "
        "the video's annotated classes (class names: the sorted distinct labels of the file); segments "
        "[start_s, end_s, class] are kept in the index. Videos are found as <id>.* or v_<id>.* anywhere under "
        "--videos; missing ones are listed in failures.jsonl. By default T frames are spread over each whole "
        "video. Env: ActivityNetGlimpse-v0(data_root=STORE, subset=training|validation).",
        epilog="example: python -m feature_extractors activitynet --videos anet_videos "
        "--annotations activity_net.v1-3.min.json --out data/activitynet",
    )
    p.add_argument("--videos", required=True, metavar="DIR", help="folder of the downloaded videos")
    p.add_argument("--annotations", required=True, metavar="JSON", help="activity_net.v1-3.min.json")
    p.add_argument(
        "--subsets",
        nargs="+",
        default=["training", "validation"],
        choices=["training", "validation"],
        help="subsets to extract (default: training validation)",
    )
    _add_common(p, None)

    p = sub.add_parser(
        "videos",
        help="your own videos from a list file",
        description="Extract the videos of a list file with one '<video path> <label> [train|test]' per line "
        "(paths relative to the list file's folder or --root, spaces allowed; several labels as a,b; the "
        "subset defaults to train). Labels are names from --classes (or 0-based indices into it); without "
        "--classes the sorted distinct labels are the classes. "
        "Env: StoreGlimpse-v0(data_root=STORE, subset=train|test).",
        epilog="example: python -m feature_extractors videos --list my_videos.txt --classes my_classes.txt "
        "--out data/mine",
    )
    p.add_argument("--list", required=True, dest="list_file", metavar="FILE", help="the video list")
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one per line (line order = index)")
    p.add_argument("--root", default=None, metavar="DIR", help="folder the list's relative paths start from")
    _add_common(p, DEFAULT_FPS)

    _add_render_parser(sub)

    p = sub.add_parser(
        "merge",
        help="join the stores of a --shard i/n extraction into one",
        description="Join all n shard stores of one --shard i/n extraction (any order) into one store, identical "
        "to what a single run would have written.",
        epilog="example: python -m feature_extractors merge --out data/hmdb51 part0 part1 part2 part3",
    )
    p.add_argument("shards", nargs="+", metavar="SHARD_STORE")
    p.add_argument("--out", required=True, metavar="STORE", help="merged store folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    p = sub.add_parser(
        "add-periphery",
        help="compute the peripheral view (periphery.npy) of a finished store",
        description="Compute periphery.npy (k channel-group means of every cell, envs/periphery.py) from the "
        "store's features.npy, for stores written before extraction wrote it, or to change k. The file is "
        "moved into place only when complete, so a failure leaves the store as it was.",
        epilog="example: python -m feature_extractors add-periphery --store data/hmdb51",
    )
    p.add_argument("--store", required=True, metavar="STORE", help="the feature store folder")
    p.add_argument("--dim", type=_positive_int, default=None, metavar="K",
                   help="values per cell (default: the largest <= 64 keeping glimpse + periphery <= 1/10 of the cube)")
    return parser


def _add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="draw a small action-video dataset with actor boxes (no download needed)",
        description="Draw procedural action videos with a known actor box in every frame, in HMDB-51's layout "
        "(class folders + split files) or ActivityNet's (untrimmed videos + annotation JSON), plus actors.json "
        "for --actors. Variants: marked (the class is the actor's colour; a white ring marks it among "
        "distractors of other colours), moving (the class is the actor's colour; only the actor moves), "
        "motion (the class is the actor's trajectory; a ring marks it among distractors on other "
        "trajectories). Prints the extraction command.",
        epilog="example: python -m feature_extractors render --variant moving --out data/rendered-moving",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    p.add_argument("--variant", default="marked", choices=sorted(VARIANTS), help="preset (default: marked)")
    p.add_argument("--layout", default="hmdb51", choices=["hmdb51", "activitynet"],
                   help="hmdb51 (default: trimmed clips, split files) or activitynet (untrimmed, segments)")
    p.add_argument("--classes", dest="num_classes", type=_positive_int, default=None, help="classes (default: 10)")
    p.add_argument("--clips-per-class", type=_positive_int, default=None,
                   help="clips per class (default: 30; with --layout activitynet: videos = classes x this)")
    p.add_argument("--frames", "-T", type=_positive_int, default=None, help="frames per clip (default: 30)")
    p.add_argument("--video-frames", dest="untrimmed_frames", type=_positive_int, default=None,
                   help="--layout activitynet: frames per untrimmed video (default: 120)")
    p.add_argument("--fps", type=_positive_float, default=None, help="frame rate of the videos (default: 10)")
    p.add_argument("--distractors", type=_non_negative_int, default=None, help="distractor objects (default: 4)")
    p.add_argument("--clutter", type=_non_negative_int, default=None,
                   help="small static shapes in the background (default: 12)")
    p.add_argument("--camera-motion", type=float, default=None, help="camera pan, pixels per frame (default: 0)")
    p.add_argument("--occlusion", type=_non_negative_int, default=None,
                   help="grey bars sweeping in front of the scene (default: 0)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed of everything drawn (default: 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _render(args: argparse.Namespace) -> int:
    spec = RenderSpec.preset(
        args.variant,
        layout=args.layout,
        num_classes=args.num_classes,
        clips_per_class=args.clips_per_class,
        frames=args.frames,
        untrimmed_frames=args.untrimmed_frames,
        fps=args.fps,
        distractors=args.distractors,
        clutter=args.clutter,
        camera_motion=args.camera_motion,
        occlusion=args.occlusion,
        seed=args.seed,
    )
    start = time.perf_counter()
    out = render(spec, args.out, progress=args.progress)
    store = Path("data") / f"{out.name}-store"
    print(
        f"rendered {spec.num_clips} {spec.layout} videos ({spec.variant}: {spec.num_classes} classes) into {out} in "
        f"{time.perf_counter() - start:.1f} s\nextract them with:\n  "
        f"{extract_command(spec, out, store)} --weights random",
        file=sys.stderr,
    )
    return 0


def _clip_list(args: argparse.Namespace) -> ClipList:
    if args.command == "hmdb51":
        clips = datasets.hmdb51(args.videos, args.splits)
    elif args.command == "activitynet":
        clips = datasets.activitynet(args.videos, args.annotations, args.subsets)
    else:
        clips = datasets.video_list(args.list_file, args.classes, args.root)
    if args.actors is not None:
        clips.actors = datasets.read_actor_boxes(args.actors, clips)
    return clips


def _print_report(clips: ClipList) -> None:
    if not clips.report:
        return
    print(f"Dataset check ({len(clips.report)} note(s)):", file=sys.stderr)
    for line in clips.report[:MAX_REPORT_LINES]:
        print(f"  - {line}", file=sys.stderr)
    if len(clips.report) > MAX_REPORT_LINES:
        print(f"  ... and {len(clips.report) - MAX_REPORT_LINES} more", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 no clip extracted, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "merge":
            merge(args.shards, args.out, progress=args.progress)
            return 0
        if args.command == "add-periphery":
            print(f"wrote {add_periphery(args.store, args.dim)}", file=sys.stderr)
            return 0
        if args.command == "render":
            return _render(args)
        if args.cells == "crop" and args.crop_size is not None:
            check_crop_size(args.crop_size)  # before the clip list is scanned
        if args.crop_size is not None and args.cells != "crop":
            raise ExtractionError(f"--crop-size {args.crop_size} needs --cells crop (full-frame cells have no crop).")
        if args.glance is not None and args.cells != "crop":
            raise ExtractionError(f"--glance {args.glance} needs --cells crop (a full-frame store's periphery is "
                                  "the channel-group means of its cells).")
        if args.glance_size is not None and args.glance != "lowres":
            raise ExtractionError(f"--glance-size {args.glance_size} needs --cells crop --glance lowres.")
        if args.glance_size is not None:
            check_glance_size(args.glance_size)  # before the clip list is scanned
        from agents.common.checks import seed_problem

        if (problem := seed_problem("--seed", args.seed)) is not None:
            raise ExtractionError(problem)
        refuse_if_locked(args.out, "feature store")  # before the slow network build; the writer takes the lock
        clips = _clip_list(args)
        _print_report(clips)
        options = ExtractOptions(
            frames=args.frames,
            fps=args.fps,
            weights=args.weights,
            seed=args.seed,
            device=args.device,
            batch_size=args.batch_size,
            workers=args.workers,
            shard=args.shard,
            progress=args.progress,
            cells=args.cells,
            crop_size=DEFAULT_CROP if args.crop_size is None else args.crop_size,
            glance=args.glance or "motion",
            glance_size=DEFAULT_GLANCE if args.glance_size is None else args.glance_size,
        )
        sampling = f"{args.frames} frames " + (f"at {args.fps:g} fps" if args.fps else "spread over each video")
        shard = f" (shard {args.shard})" if args.shard else ""
        print(
            f"{clips.dataset}: {len(clips.records)} clips, {len(clips.class_names)} classes{shard}; {sampling}; "
            f"weights {args.weights} -> {args.out}",
            file=sys.stderr,
        )
        if args.ray is None:
            summary = extract(clips, args.out, options)
        else:
            from .distributed import extract_on_ray  # imports Ray only when asked

            summary = extract_on_ray(
                clips, args.out, options, address=args.ray or None, actors=args.ray_actors, threads=args.ray_threads
            )
        if summary.clips_done + summary.clips_done_before == 0:
            remove_store(Path(args.out))  # an empty store would only fail later, when an env opens it
            report = summary.text().replace(f" (all listed in {summary.store / 'failures.jsonl'})", "")
            print("\n".join(report.splitlines()[:-1]), file=sys.stderr)  # the reasons, not "Store: ... complete"
            print(f"error: no clip could be extracted (all {summary.clips_failed} failed; reasons above), so no "
                  f"store was made at '{args.out}'. Fix the video paths or files and run the command again.",
                  file=sys.stderr)
            return 1
        print(summary.text(), file=sys.stderr)
        return 0
    except (ExtractionError, StoreError, ClusterError, FolderInUseError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def console_main(argv: Sequence[str] | None = None) -> int:
    """:func:`main` as a command (``python -m feature_extractors``, ``glimpse-extract``): decoding workers, the
    fork server and local Ray die with it, even on kill -9."""
    from agents.common.children import reap_children_on_exit

    reap_children_on_exit()
    return main(argv)
