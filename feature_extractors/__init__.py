"""Videos -> frames (OpenCV) -> GoogLeNet ``inception5b`` cubes (torchvision) -> feature store.

Command line: ``python -m feature_extractors {hmdb51,activitynet,videos,merge} --help``.

From Python::

    from feature_extractors import ExtractOptions, datasets, extract
    clips = datasets.hmdb51("hmdb51_org", "testTrainMulti_7030_splits")
    summary = extract(clips, "data/hmdb51", ExtractOptions(frames=30, fps=10.0))

Modules: ``datasets`` (clip lists with labels / splits / segments), ``decode`` (frame sampling with
OpenCV), ``backbone`` (GoogLeNet weights and forward pass), ``extract`` (the parallel pipeline and
resumable writing), ``distributed`` (the same on a Ray cluster, ``--ray``; needs the ``[ray]`` extra),
``merge`` (joining ``--shard`` stores). The store format itself is ``envs.store``.
"""

from feature_extractors import datasets
from feature_extractors.backbone import Backbone, load_googlenet
from feature_extractors.datasets import ClipList
from feature_extractors.decode import DecodedClip, DecodeError, Sampling, decode_clip
from feature_extractors.errors import ExtractionError
from feature_extractors.extract import ExtractOptions, Shard, Summary, extract
from feature_extractors.merge import merge

__all__ = [
    "Backbone",
    "ClipList",
    "DecodeError",
    "DecodedClip",
    "ExtractOptions",
    "ExtractionError",
    "Sampling",
    "Shard",
    "Summary",
    "datasets",
    "decode_clip",
    "extract",
    "load_googlenet",
    "merge",
]
