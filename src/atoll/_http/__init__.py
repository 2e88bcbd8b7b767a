"""Atoll's HTTP layer: one copy of the plumbing the router, the local balancer and the replicas share.

::

    asgi.py        bare ASGI helpers, and a uvicorn runner of ASGI apps
    metrics.py     Prometheus text metrics kept in plain ints
    dispatch.py    the callback-style request contract (Dispatcher) and its ASGI front
    server.py      the raw httptools server of a Dispatcher, with its limits (router, balancer, replicas)
    asgi_server.py an ASGI app (a replica) on that server, and the runner of a Dispatcher
    keys.py        API-key checks (router and balancer) and the replicas' secret
    client.py      the keep-alive client pool that forwards to replicas
    proxy.py       the proxy: replicas in turn, the next one on a connection failure

A low layer: it imports nothing of Atoll but :mod:`atoll.errors`, so the
on-board toolkit (inside replicas), the router and the container managers all
build on it. Nothing is imported here, so ``import atoll._http.asgi`` in a
replica costs only that module.
"""
