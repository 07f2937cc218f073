"""Object storage (``s3://bucket/prefix``) through ``pyarrow.fs``: a path the layout uses as it uses a ``pathlib.Path``.

``ObjPath`` has the part of ``pathlib.Path``'s interface the store uses
(joining, names, ``exists``, ``glob``, ``stat``, reads, writes, ``replace``),
so ``Layout``, the readers and the SQL views work on either. Folders are key
prefixes. Listings are fresh for ``ttl_s`` (``LISTING_TTL_S`` for readers; 0,
no cache, for writers); past that a background thread lists afresh while the
old listing is still served, so a step switch never waits on the store for
what it has listed before, and a new step shows within about two periods. Objects appear whole or not at all
(a PUT is atomic), and the commit marker is written with a conditional PUT
(``If-None-Match: *``, through boto3: ``pyarrow.fs`` has no conditional write).

Credentials, region and endpoint come from the standard AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), which
``deepviz --endpoint-url`` sets. ``os.fspath`` of an ``ObjPath`` is where a
local copy of the object is kept (the state dicts that ``torch.load`` reads):
a temporary folder of this process, removed when it exits.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pyarrow.fs as pafs

from ..errors import ConfigurationError

SCHEME = "s3://"
_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?$")
#: How long a reader trusts a listing: a new step shows this late at most.
LISTING_TTL_S = 2.0


def is_uri(path) -> bool:
    return isinstance(path, ObjPath) or (isinstance(path, str) and path.startswith(SCHEME))


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def open_root(uri: str, ttl_s: float = LISTING_TTL_S) -> ObjPath:
    """The ``ObjPath`` of ``s3://bucket/prefix``, on a filesystem of its own with listings cached for ``ttl_s``."""
    m = _URI.match(uri)
    if not m:
        raise ConfigurationError(
            f"Cannot use {uri!r} as a stats db on object storage. Expected s3://BUCKET/PREFIX, with a bucket name of "
            "3-63 lower-case letters, digits, '.' or '-', e.g. s3://team-stats/deepviz."
        )
    prefix = "/".join(p for p in (m.group(2) or "").split("/") if p)
    if any(p in (".", "..") for p in prefix.split("/")):
        raise ConfigurationError(f"The prefix of {uri!r} holds '.' or '..'; give a plain s3://BUCKET/PREFIX.")
    return ObjPath(Remote(m.group(1), ttl_s), prefix)


class Remote:
    """One bucket: the pyarrow filesystem, a boto3 client for conditional puts, the listing cache, local copies."""

    def __init__(self, bucket: str, ttl_s: float):
        self.bucket = bucket
        self.ttl_s = ttl_s
        endpoint = endpoint_url()
        kwargs = {}
        if endpoint:
            scheme, _, rest = endpoint.partition("://")
            kwargs = {"endpoint_override": rest or scheme, "scheme": scheme if rest else "https"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.fs = pafs.S3FileSystem(region=region or "us-east-1", **kwargs)
        self._listings = Listings(ttl_s)
        self._client = None
        self._client_lock = threading.Lock()
        self._local: str | None = None

    def client(self):
        """boto3's S3 client (for what pyarrow.fs cannot do: a conditional put), made on first use."""
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3
                except ImportError:
                    raise ConfigurationError(
                        f"Writing the stats db in s3://{self.bucket} needs boto3, for the conditional puts that commit a "
                        "step (pyarrow.fs has none): pip install 'deepviz[s3]'."
                    ) from None
                self._client = boto3.client("s3", endpoint_url=endpoint_url())
            return self._client

    def local_dir(self) -> str:
        """This process's folder of local copies of objects (removed when the process exits)."""
        with self._client_lock:
            if self._local is None:
                self._local = tempfile.mkdtemp(prefix="deepviz-s3-")
                weakref.finalize(self, shutil.rmtree, self._local, True)
            return self._local

    def _cached(self, key: tuple, build):
        return build() if self.ttl_s <= 0 else self._listings.get(key, build)

    def tree(self, key: str, recursive: bool = True) -> dict[str, pafs.FileInfo]:
        """What is under ``key/`` (all of it, or one level), by key relative to it; folders too."""
        return self._cached(("tree", key, recursive), lambda: self._list(key, recursive))

    def _list(self, key: str, recursive: bool) -> dict[str, pafs.FileInfo]:
        selector = pafs.FileSelector(f"{self.bucket}/{key}".rstrip("/"), allow_not_found=True, recursive=recursive)
        cut = len(self.bucket) + 1 + (len(key) + 1 if key else 0)
        return {info.path[cut:]: info for info in self.fs.get_file_info(selector)}

    def info(self, key: str) -> pafs.FileInfo:
        """The file info of ``key``, from a fresh listing of a folder above it when there is one."""
        if self.ttl_s > 0:
            parts = key.split("/")
            for n in range(len(parts) - 1, -1, -1):
                above = "/".join(parts[:n])
                for tree in (self._listings.peek(("tree", above, True)),
                             self._listings.peek(("tree", above, False)) if n == len(parts) - 1 else None):
                    if tree is not None:
                        found = tree.get("/".join(parts[n:]))
                        return found or pafs.FileInfo(f"{self.bucket}/{key}", pafs.FileType.NotFound)
        return self._cached(("info", key), lambda: self.fs.get_file_info(f"{self.bucket}/{key}"))

    def changed(self) -> None:
        """This process wrote or removed something: forget what it listed."""
        self._listings.clear()


class Listings:
    """Listings by key, each fresh for ``ttl_s``; an older one is still served while a thread lists afresh.

    So a reader never waits on the store for something it has listed before
    (a step switch asks nothing of the store); what it sees is at most
    ``ttl_s`` plus one listing's time old. At most ``max_entries`` are kept,
    least recently used out first.
    """

    def __init__(self, ttl_s: float, max_entries: int = 4096):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()  # key -> (listed at, value)
        self._refreshing: set = set()
        self._lock = threading.Lock()

    def peek(self, key):
        """The value listed under ``key`` if there is one (fresh or being refreshed), else None."""
        with self._lock:
            found = self._items.get(key)
        return None if found is None else found[1]

    def get(self, key, build):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                stale = time.monotonic() - found[0] >= self.ttl_s
                if stale and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key, build), daemon=True).start()
                return found[1]
        return self._put(key, build())

    def _refresh(self, key, build) -> None:
        try:
            self._put(key, build())
        except OSError:
            pass  # the store is unreachable for now: the last listing stays, the next look tries again
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _put(self, key, value):
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ObjPath:
    """A key in a bucket, used like a ``pathlib.Path`` by the store."""

    __slots__ = ("remote", "key")

    def __init__(self, remote: Remote, key: str):
        self.remote = remote
        self.key = key.strip("/")

    # -- path algebra
    def joinpath(self, *parts) -> ObjPath:
        # As pathlib does, an empty folder level ("a//b") is dropped.
        key = "/".join(p for part in (self.key, *map(str, parts)) for p in part.split("/") if p)
        joined = ObjPath.__new__(ObjPath)
        joined.remote, joined.key = self.remote, key
        return joined

    __truediv__ = joinpath

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjPath:
        return ObjPath(self.remote, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("/")) if self.key else ()

    def with_name(self, name: str) -> ObjPath:
        return self.parent / name

    def relative_to(self, other: ObjPath) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key) if other.key else PurePosixPath(self.key)

    @property
    def path(self) -> str:
        """The path pyarrow.fs knows it by: ``bucket/key``."""
        return f"{self.remote.bucket}/{self.key}"

    def __str__(self) -> str:
        return f"{SCHEME}{self.path}"

    def __repr__(self) -> str:
        return f"ObjPath({str(self)!r})"

    def __fspath__(self) -> str:
        return os.path.join(self.remote.local_dir(), self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjPath) and (self.remote.bucket, self.key) == (other.remote.bucket, other.key)

    def __lt__(self, other: ObjPath) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash((self.remote.bucket, self.key))

    # -- what is there
    def _info(self) -> pafs.FileInfo:
        return self.remote.info(self.key)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_symlink(self) -> bool:
        return False  # object stores have no links

    def stat(self) -> SimpleNamespace:
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"No such object: {self}")
        ns = info.mtime_ns or 0
        return SimpleNamespace(st_size=info.size, st_mtime_ns=ns, st_mtime=ns / 1e9)

    def iterdir(self):
        return (self / rel for rel in self.remote.tree(self.key, recursive=False))

    def glob(self, pattern: str):
        """Keys (and folders) below this one whose path relative to it matches ``pattern`` part by part."""
        wanted = pattern.split("/")
        for rel in self.remote.tree(self.key, recursive=len(wanted) > 1):
            parts = rel.split("/")
            if len(parts) == len(wanted) and all(_match(p, w) for p, w in zip(parts, wanted)):
                yield self / rel

    def rglob(self, pattern: str):
        for rel, info in self.remote.tree(self.key).items():
            if info.type == pafs.FileType.File and _match(rel.rsplit("/", 1)[-1], pattern):
                yield self / rel

    # -- reads and writes
    def read_bytes(self) -> bytes:
        with self.remote.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        with self.remote.fs.open_output_stream(self.path) as f:
            f.write(data)
        self.remote.changed()

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a folder is a prefix, there once an object is under it."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.remote.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        self.remote.changed()

    def rmtree(self) -> None:
        self.remote.fs.delete_dir(self.path)
        self.remote.changed()

    def replace(self, target: ObjPath) -> ObjPath:
        """Copy to ``target`` (whole, as every object appears) and remove this one."""
        self.remote.fs.move(self.path, target.path)
        self.remote.changed()
        return target

    def local_copy(self) -> Path:
        """The object downloaded to this process's local folder (once: the objects it is used for never change)."""
        local = Path(os.fspath(self))
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(self.read_bytes())
            os.replace(tmp, local)
        return local

    def put_if_absent(self, data: bytes) -> bool:
        """Create the object with ``data`` unless it exists (``If-None-Match: *``); False when it did."""
        from botocore.exceptions import ClientError

        try:
            self.remote.client().put_object(Bucket=self.remote.bucket, Key=self.key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise OSError(f"Cannot write {self}: {exc}") from exc
        finally:
            self.remote.changed()
        return True


def _match(name: str, pattern: str) -> bool:
    # fnmatchcase: the key's case matters; a leading '.' is matched only by a pattern that has it, as in pathlib.
    return fnmatch.fnmatchcase(name, pattern) and (not name.startswith(".") or pattern.startswith("."))
