"""Atoll benchmarks side by side with their peers (MLflow, a bare uvicorn app, nginx, papermill, cp).

Run ``bench/run`` (or ``make bench``); ``bench/run --quick`` is a short smoke run.
Every figure is a median of interleaved runs measured in the same run as its
peer, and the results land in ``bench/results.md``. Benchmarks are not tests:
nothing here asserts a target, the table says met or missed.
"""
