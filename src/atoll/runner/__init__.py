"""The on-board runner: what executes a notebook inside a task.

``python -m atoll.runner train`` executes a training notebook with papermill
(:mod:`atoll.runner.train`); ``python -m atoll.runner serve`` runs a
prediction notebook in-process (:mod:`atoll.runner.serve`). Both read their
task's layout through ``ATOLL_TASK_DIR`` (see :mod:`atoll.toolkit.paths`).
"""

# The kernelspec every local build environment declares (share/jupyter/kernels/atoll).
KERNEL_NAME = "atoll"
