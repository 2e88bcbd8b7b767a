"""On-board toolkit: what training and prediction notebooks import.

Light on purpose: names are imported on first use, so ``import atoll.toolkit``
costs nothing in a serving replica beyond what it calls.
"""

from __future__ import annotations

from atoll._registry import lazy_exports

_EXPORTS = {
    "BatchConfig": "atoll.toolkit.batching",
    "LazyModelServer": "atoll.toolkit.serving",
    "OnlinePredict": "atoll.toolkit.serving",
    "Publisher": "atoll.toolkit.publisher",
    "build_meta": "atoll.toolkit.paths",
    "data_path": "atoll.toolkit.paths",
    "dataset_meta": "atoll.toolkit.paths",
    "deployment_meta": "atoll.toolkit.paths",
    "model_path": "atoll.toolkit.paths",
    "mount_path": "atoll.toolkit.paths",
    "movers_meta": "atoll.toolkit.paths",
    "progress": "atoll.toolkit.progress",
    "project_meta": "atoll.toolkit.paths",
    "require_dataset": "atoll.toolkit.requirements",
    "require_movers": "atoll.toolkit.requirements",
    "require_version": "atoll.toolkit.requirements",
    "tmp_path": "atoll.toolkit.paths",
    "train_meta": "atoll.toolkit.paths",
    "training_meta": "atoll.toolkit.paths",
    "version_meta": "atoll.toolkit.paths",
}

__all__ = [  # the keys of _EXPORTS, spelled out for static tools
    "BatchConfig",
    "LazyModelServer",
    "OnlinePredict",
    "Publisher",
    "build_meta",
    "data_path",
    "dataset_meta",
    "deployment_meta",
    "model_path",
    "mount_path",
    "movers_meta",
    "progress",
    "project_meta",
    "require_dataset",
    "require_movers",
    "require_version",
    "tmp_path",
    "train_meta",
    "training_meta",
    "version_meta",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
