"""Fixtures of the Kubernetes tests; the helpers themselves live in ``kube_helpers`` (a unique module
name: several test folders have a conftest, so ``from conftest import ...`` would be ambiguous)."""

from kube_helpers import cluster, kube_config

__all__ = ["cluster", "kube_config"]
