"""`dispatch split-region`: split a hot region of the geo index, or show the split list.

The list lives in Redis (geoindex/split.py), so the command changes it for every instance
of that Redis at once; each instance reads the new version within a couple of seconds. A
change waits for every instance twice (about 2 x 6 s with the index's defaults) and
re-homes the parent's drivers in between; the answer is the list afterwards, as JSON.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from dispatch.adapters.redis_client import connect
from dispatch.settings import from_env
from geoindex import GeoIndexError, InvalidInput, RedisGeoIndex, SearchConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "split-region",
        help="index a region cell's drivers at a finer resolution (or show the list)",
    )
    p.add_argument("parent", nargs="?", help="the region cell (H3 hex, DISPATCH_REGION_RES)")
    p.add_argument(
        "res", nargs="?", type=int,
        help="its regions' resolution: region_res + 1 or + 2; region_res unsplits it",
    )  # fmt: skip
    backend = p.add_mutually_exclusive_group()
    backend.add_argument("--redis-url", help="single Redis (DISPATCH_REDIS_URL)")
    backend.add_argument("--redis-cluster-url", help="Redis Cluster (DISPATCH_REDIS_CLUSTER_URL)")
    p.add_argument(
        "--settle-s", type=float, default=None,
        help="wait per phase for every instance to read it (default 6 s: three of the "
        "index's 2 s refresh intervals; never less than the instances' interval)",
    )  # fmt: skip


async def run(args: argparse.Namespace) -> int:
    settings = from_env(redis_url=args.redis_url, redis_cluster_url=args.redis_cluster_url)
    url = settings.redis_cluster_url or settings.redis_url
    if url is None:
        print("dispatch split-region: needs a Redis (the embedded backend is in-process)",
              file=sys.stderr)  # fmt: skip
        return 2
    if (args.parent is None) != (args.res is None) or (args.settle_s or 0) < 0:
        print("dispatch split-region: give both PARENT and RES, or neither (to show the "
              "list); --settle-s must not be negative", file=sys.stderr)  # fmt: skip
        return 2
    client = connect(
        url, cluster=settings.redis_cluster_url is not None, timeout_s=settings.redis_timeout_s
    )
    index = RedisGeoIndex(client, config=SearchConfig(region_res=settings.region_res))
    try:
        if args.parent is None:
            layout = await index.region_split()
        else:
            layout = await index.split_region(args.parent, args.res, args.settle_s)
    except InvalidInput as exc:
        print(f"dispatch split-region: {exc}", file=sys.stderr)
        return 2
    except GeoIndexError as exc:
        print(f"dispatch split-region: {exc}", file=sys.stderr)
        return 1
    finally:
        await index.close()
    sys.stdout.write(orjson.dumps(layout.describe()).decode() + "\n")
    return 0
