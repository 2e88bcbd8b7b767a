"""The on-board runner: what executes a notebook inside a task.

``python -m atoll.runner train`` executes a training notebook with papermill
(:mod:`atoll.runner.train`); ``python -m atoll.runner serve`` runs a
prediction notebook in-process (:mod:`atoll.runner.serve`); ``python -m
atoll.runner fetch`` fetches a task's inputs (:mod:`atoll.runner.fetch`, fetch
staging). All read the task contract (:mod:`atoll.task`): the layout through
``ATOLL_TASK_DIR``, what to run from the record in ``atoll/meta``.
"""

# The kernelspec every local build environment declares (share/jupyter/kernels/atoll).
KERNEL_NAME = "atoll"
