"""Byte-for-byte reproducible model archives: the same files always give the same model.tar.gz."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import PurePosixPath


def reproducible_tar_gz(files: dict[str, bytes]) -> bytes:
    """A tar.gz of ``files`` and their parent folders, in path order, with fixed tar and gzip headers
    (no times, owners or file name), so its sha256 depends on the contents alone."""
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents if str(parent) != "."}
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", filename="", mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(folders | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name in files:
                info.size = len(files[name])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
    return buffer.getvalue()
