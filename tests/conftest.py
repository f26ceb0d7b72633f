"""Shared fixtures: real Redis servers (single and cluster) started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.redis_procs import RedisCluster, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A single Redis emptied before the test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """A Redis Cluster emptied before the test."""
    redis_cluster.flush()
    return redis_cluster.url
