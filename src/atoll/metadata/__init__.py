"""Metadata stores: where records live. One protocol, one module per backend."""

from atoll.metadata.base import MetadataStore, get_metadata_store

__all__ = ["MetadataStore", "get_metadata_store"]
