"""Adapters: the in-memory (embedded) and Redis implementations of the service ports."""
