"""Gymnasium glimpse environments for hard visual attention in video action recognition.

Importing this package registers every environment id (Gymnasium 1.x has no plugin loading)::

    import gymnasium, envs
    env = gymnasium.make("SyntheticGlimpse-v0")
    vec = gymnasium.make_vec("SyntheticGlimpse-v0", num_envs=64, vectorization_mode="vector_entry_point")

numpy only: importing ``envs`` never imports torch.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from envs.glimpse_env import GlimpseEnv
from envs.ladder import DEFAULT_ENV, LADDER, ladder_table
from envs.store import ClipRecord, FeatureStore, StoreWriter, write_store
from envs.synthetic import SyntheticConfig, export_synthetic_store
from envs.vector import GlimpseVectorEnv

#: Environment id -> dataset it reads (the synthetic ladder's rungs first, easiest first; envs/ladder.py).
ENV_IDS = {
    **{env_id: "synthetic" for env_id in LADDER},
    "HMDB51Glimpse-v0": "hmdb51",
    "ActivityNetGlimpse-v0": "activitynet",
    "StoreGlimpse-v0": "store",
}

for _env_id, _dataset in ENV_IDS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="envs.glimpse_env:GlimpseEnv",
            vector_entry_point="envs.vector:GlimpseVectorEnv",
            kwargs={"dataset": _dataset, **LADDER.get(_env_id, {})},
        )

__all__ = [
    "DEFAULT_ENV",
    "ENV_IDS",
    "LADDER",
    "ClipRecord",
    "FeatureStore",
    "GlimpseEnv",
    "GlimpseVectorEnv",
    "StoreWriter",
    "SyntheticConfig",
    "export_synthetic_store",
    "ladder_table",
    "write_store",
]
