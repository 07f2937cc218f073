"""Downloads that are whole or absent, and tar archives unpacked only inside their folder."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from deepviz.errors import DatasetError

_CHUNK = 1 << 20


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # integrity against the published sums, not security
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    The bytes go to a temporary file beside ``dest``, renamed only when the
    download is complete and its MD5 (if given) matches. A ``dest`` that is
    already there with the right MD5 is kept without downloading again.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if md5 is not None and dest.is_file() and _md5(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True,
                desc=dest.name, disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"Could not download {url} to {dest}: {reason}. Check the network connection, "
            f"or fetch the file by hand and place it at {dest}."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)  # Ctrl-C mid-download: leave no partial file behind
        raise
    actual = digest.hexdigest()
    if md5 is not None and actual != md5:
        tmp.unlink(missing_ok=True)
        raise DatasetError(
            f"Downloaded {url} has MD5 {actual}, expected {md5}; the download was corrupted "
            f"or the file changed upstream. The partial file was deleted; try again."
        )
    os.replace(tmp, dest)
    return dest


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Refuse a member that would land, or link, outside ``dest``."""
    base = os.path.realpath(dest)

    def inside(path: str) -> bool:
        return os.path.commonpath([base, os.path.realpath(path)]) == base

    target = os.path.join(base, member.name)
    if os.path.isabs(member.name) or not inside(target):
        raise DatasetError(
            f"{archive}: refusing to extract {member.name!r}, whose path is outside {dest}; "
            f"the archive is not safe to unpack."
        )
    if member.issym() or member.islnk():
        link_base = os.path.dirname(target) if member.issym() else base
        if os.path.isabs(member.linkname) or not inside(os.path.join(link_base, member.linkname)):
            raise DatasetError(
                f"{archive}: refusing to extract {member.name!r}, a link to {member.linkname!r} "
                f"outside {dest}; the archive is not safe to unpack."
            )
    elif not (member.isfile() or member.isdir()):
        raise DatasetError(
            f"{archive}: refusing to extract {member.name!r}, which is a device or pipe, "
            f"not a file or folder."
        )


def extract_archive(archive: str | Path, dest_dir: str | Path) -> Path:
    """Unpack a tar archive (any compression) into ``dest_dir`` and return it.

    Every member must stay inside ``dest_dir``: absolute paths, ``..`` and
    links pointing out are refused before anything is written. Files are
    unpacked into a temporary folder first and moved into place at the end,
    so an interrupted extraction leaves no half-written dataset behind.
    """
    archive, dest = Path(archive), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, dest, archive)
            with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
                if hasattr(tarfile, "data_filter"):  # a second guard where Python has it (3.10.12+)
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; members were checked above
                    tar.extractall(tmp, members=members)
                for path in sorted(Path(tmp).rglob("*")):
                    target = dest / path.relative_to(tmp)
                    if path.is_dir() and not path.is_symlink():
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        os.replace(path, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(
            f"{archive}: cannot be extracted as a tar archive ({exc}); it may be truncated. "
            f"Delete it and download again."
        ) from exc
    return dest


def fetch_archive(url: str, md5: str, dest_dir: Path, progress: bool) -> None:
    archive = download_file(url, dest_dir / url.rsplit("/", 1)[-1], md5=md5, progress=progress)
    extract_archive(archive, dest_dir)


def folder_with(root: Path, folder_name: str, needed: list[str], url: str, md5: str, download: bool,
                progress: bool) -> tuple[Path, list[str]]:
    """The dataset's folder under ``root`` and the ``needed`` files still missing there, after fetching
    the archive once when ``download`` is set and something is missing."""
    from .base import dataset_folder

    folder = dataset_folder(root, folder_name, needed)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        fetch_archive(url, md5, folder.parent, progress)
        missing = [f for f in needed if not (folder / f).is_file()]
    return folder, missing
