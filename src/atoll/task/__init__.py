"""The task contract: what the off-board side writes and the on-board side reads.

Container managers stage a task with it; the runner and the toolkit read it
inside the task. Modules (import the one you need; this package imports nothing)::

    layout     env variable names and the /app /atoll/meta /data /model layout
    meta       reading and writing atoll/meta/*.json (task.json: what to run)
    stores     the store settings handed to a task, and opening them
    staging    putting inputs in place (host staging, or fetched by the task)
    outputs    file-store keys a training writes
    deadline   wait_until: the one "poll until ready or give up" helper
"""
