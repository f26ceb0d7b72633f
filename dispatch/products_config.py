"""The product catalog from the settings: the built-in one (economy, comfort, xl, wav), or
the products file DISPATCH_PRODUCTS_FILE names; read once per process."""

from __future__ import annotations

import functools

import orjson

from dispatch.domain.products import DEFAULT_CATALOG, Catalog, ProductError, catalog_from


@functools.lru_cache(maxsize=8)
def load_catalog(path: str | None, default: str) -> Catalog:
    """ProductError says what is wrong with the file (or the default product)."""
    if path is None:
        return Catalog(DEFAULT_CATALOG.products, default)
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
    except OSError as exc:
        raise ProductError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ProductError(f"{path} is not valid JSON: {exc}") from None
    return catalog_from(doc, default)
