"""Object stores (``s3://``, ``gs://``, ``hdfs://``) through pyarrow's filesystems.

Credentials and endpoints come from the usual environment on every node
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO): docs/scale.md.
"""

from __future__ import annotations

from typing import Any

from anan_onnx.errors import AnanError, first_line

__all__ = ["filesystem"]


def filesystem(uri: str, cache: dict[str, Any] | None = None) -> tuple[Any, str]:
    """pyarrow's filesystem for ``uri`` and the path within it (cached per bucket)."""
    from pyarrow import fs

    scheme, _, rest = uri.partition("://")
    key = f"{scheme}://{rest.split('/', 1)[0]}"
    try:
        if cache is not None and key in cache:
            return cache[key], rest
        found, rest = fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad URI
        raise AnanError(
            f"cannot open {uri} ({first_line(exc, 150)}): check the URI and the credentials"
        ) from None
    if cache is not None:
        cache[key] = found
    return found, rest
