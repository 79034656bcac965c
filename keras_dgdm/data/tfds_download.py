"""A tensorflow-datasets dataset downloaded and prepared on first use, or a short error that says
where to get the data and how to pass it.

tfds retries a failed download 10 times with exponential back-off: without network, preparing
caltech_birds2011 or cars196 ends after about 3.5 minutes in a ``requests`` traceback. Here the
download hosts are tried first (seconds), and every failure of the download becomes a
``DataError`` naming the dataset, the cause, where the data comes from and how to point
``data_dir`` (``--data-dir`` on the command line) at it.
"""
from __future__ import annotations

import os
import socket

from keras_dgdm.data.validation import DataError

#: Hosts that tfds downloads each builder's files from (tfds 4.9).
DOWNLOAD_HOSTS = {
    "caltech_birds2011": ("data.caltech.edu",),
    "cars196": ("ai.stanford.edu",),
}
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                    "all_proxy")


def unreachable_host(tfds_name: str, timeout: float = 10.0):
    """The first download host of ``tfds_name`` that cannot be connected to, with the reason,
    e.g. ``"data.caltech.edu ([Errno -2] Name or service not known)"``; None when all answer,
    when the hosts are unknown, or when a proxy is configured (requests goes through it)."""
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None
    for host in DOWNLOAD_HOSTS.get(tfds_name, ()):
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError as error:
            return f"{host} ({error})"
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def ensure_prepared(builder, name: str, download: bool = True, where: str = "") -> None:
    """Downloads and prepares tfds ``builder`` unless it is prepared in its data_dir.

    Args:
        builder: a ``tfds.core.DatasetBuilder``.
        name: our dataset name, for messages ("cub", "cars").
        download: when False, a dataset that is not prepared is an error.
        where: where to get the data and how to pass it, appended to every error.

    Raises:
        DataError: not prepared and ``download`` is False; no network (a download host cannot
            be reached); the download or preparation failed; a package tfds needs is missing.
    """
    import tensorflow_datasets as tfds  # deferred: slow to import, for tfds sources only

    if builder.is_prepared():
        return
    prefix = f"{name}: tensorflow-datasets' {builder.name} is not prepared in {builder.data_dir}"
    if not download:
        raise DataError(f"{prefix} and download=False. {where}".strip())
    host = unreachable_host(builder.name)
    if host is not None:
        raise DataError(f"{prefix} and cannot be downloaded: no network? Cannot connect to "
                        f"{host}. {where}".strip())
    try:
        builder.download_and_prepare()
    except ImportError as error:
        raise DataError(f"{prefix}: preparing it needs the package {error.name!r}, not "
                        f"installed ({error}).") from error
    except (OSError, tfds.download.DownloadError) as error:
        raise DataError(f"{prefix}: the download failed ({_first_line(error)}). {where}".strip()) \
            from error
