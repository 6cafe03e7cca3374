"""Join the shard stores of one ``--shard i/n`` extraction into a single store.

Shard ``i`` of ``n`` holds the clips at positions ``i, i + n, i + 2n, ...`` of the full clip list, so the
merged store interleaves the shards back into the original order and equals the store a single run
would have written (features, index, meta and failures). The merge goes through ``StoreWriter`` like an
extraction, so an interrupted merge resumes too.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.store import (
    CORE_FILE,
    MOTION_KEY,
    PERIPHERY_FILE,
    PERIPHERY_KEY,
    ClipRecord,
    FeatureStore,
    StoreError,
    StoreWriter,
    has_glance,
)

from .errors import ExtractionError

# meta.json keys StoreWriter.open fills in itself; everything else in a shard's meta is a setting.
_LAYOUT_KEYS = (
    "format_version",
    "class_names",
    "num_clips",
    "frames",
    "grid",
    "feature_dim",
    "subsets",
    "splits",
    PERIPHERY_KEY,  # the writer computes the merged store's periphery and motion periphery itself
    MOTION_KEY,
)


def _open_shard(path: Path) -> tuple[FeatureStore, int, int]:
    try:
        store = FeatureStore(path)
    except StoreError as err:
        raise ExtractionError(f"Cannot merge shard '{path}': {err}") from None
    shard = store.meta.get("shard")
    try:
        index, count = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ExtractionError(
            f"'{path}' is not a shard store (its meta.json has no 'shard': 'i/n'); merge joins stores made "
            "with --shard i/n."
        ) from None
    return store, index, count


def merge(shards: list[str | Path], out: str | Path, progress: bool = True) -> Path:
    """Merge the complete shard stores ``shards`` (all ``n`` of one extraction, any order) into ``out``."""
    if not shards:
        raise ExtractionError("Name the shard stores to merge, e.g. `merge --out data/hmdb51 shard0 shard1`.")
    opened = sorted((_open_shard(Path(p)) for p in shards), key=lambda s: s[1])
    count = opened[0][2]
    indices = [index for _, index, _ in opened]
    if any(c != count for _, _, c in opened) or indices != list(range(count)):
        found = ", ".join(f"{s.path} ({s.meta['shard']})" for s, _, _ in opened)
        raise ExtractionError(
            f"Merge needs every shard 0/{count} .. {count - 1}/{count} of one extraction exactly once; got: {found}."
        )
    reference = {k: v for k, v in opened[0][0].meta.items() if k not in ("shard", "num_clips", "complete")}
    for store, _, _ in opened[1:]:
        other = {k: v for k, v in store.meta.items() if k not in ("shard", "num_clips", "complete")}
        if other != reference:
            diff = sorted(k for k in set(other) | set(reference) if other.get(k) != reference.get(k))
            raise ExtractionError(
                f"Shards '{opened[0][0].path}' and '{store.path}' were made with different settings "
                f"(differ in: {', '.join(diff)}); re-extract them with the same command and --shard."
            )
    total = sum(len(store.all_records) for store, _, _ in opened)
    for store, index, _ in opened:
        expected = len(range(index, total, count))
        if len(store.all_records) != expected:
            raise ExtractionError(
                f"Shard '{store.path}' ({index}/{count}) holds {len(store.all_records)} clips but a {total}-clip "
                f"extraction gives it {expected}: the shards come from different clip lists."
            )

    # position r of the full list is row r // n of shard r % n
    sources = [(opened[r % count][0], r // count) for r in range(total)]
    records = [
        dataclasses.replace(store.all_records[row], timestamps=None, valid_frames=None) for store, row in sources
    ]
    meta = opened[0][0].meta
    settings = {k: v for k, v in meta.items() if k not in (*_LAYOUT_KEYS, "shard", "complete")}
    out = Path(out)
    writer = StoreWriter.open(
        out,
        class_names=meta["class_names"],
        records=records,
        frames=meta["frames"],
        grid=meta["grid"],
        feature_dim=meta["feature_dim"],
        settings=settings,
        subsets=meta["subsets"],
        splits=meta["splits"],
        with_core=all((store.path / CORE_FILE).exists() for store, _, _ in opened),
        glance=meta[PERIPHERY_KEY] if has_glance(meta) else None,
    )
    cores = {}
    if writer.core is not None:
        cores = {id(store): np.load(store.path / CORE_FILE, mmap_mode="r") for store, _, _ in opened}
    glances = {}  # a pixel glance cannot be recomputed from the features: copy the shards'
    if writer.glance:
        glances = {id(store): np.load(store.path / PERIPHERY_FILE, mmap_mode="r") for store, _, _ in opened}
    failures = {id(store): {int(f["row"]): f["reason"] for f in store.failures} for store, _, _ in opened}
    start = time.perf_counter()
    for r in tqdm(writer.pending_rows(), unit="clip", desc=f"merge -> {out.name}", disable=not progress):
        store, row = sources[r]
        reason = failures[id(store)].get(row)
        if reason is not None:
            writer.mark_failed(r, reason)
            continue
        source: ClipRecord = store.all_records[row]
        core = cores[id(store)][row] if cores else None
        glance = glances[id(store)][row] if glances else None
        writer.write_clip(
            r, store.features[row], valid_frames=source.valid_frames, timestamps=source.timestamps, core=core,
            periphery=glance,
        )
    writer.finalize()
    writer.close()
    print(
        f"Merged {count} shards: {total} clips ({len(writer.failed)} failed) in {time.perf_counter() - start:.1f} s "
        f"into {out}",
        file=sys.stderr,
    )
    return out
