"""Compatibility with the framework Atoll is modelled on.

:mod:`atoll.compat.noronha` is shipped inside tasks as the top-level package
``noronha`` (the base image's wheel and every local build environment carry
it), so notebooks written for Noronha import their toolkit unchanged. Nothing
off-board imports it.
"""
