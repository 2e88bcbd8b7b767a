"""The Kubernetes container manager: trainings as Jobs, deployments as Deployments, islands and the IDE.

``manifests`` and ``island_manifests`` build the objects as plain dicts (no
cluster, no client: what ``atoll kube render`` prints); the manager sends them
through the official ``kubernetes`` client (``pip install 'atoll[kubernetes]'``).
"""
