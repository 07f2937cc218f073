"""The probe thumbnails, read a row group at a time: a hover asks for one image, and at
100,000 images the thumbnail column is far too big to hold whole (1.3 GB of Python bytes
objects for 64-px noise images).

The probes file is written in row groups of ``PROBE_ROW_GROUP`` rows with statistics on
``probe_id`` (``writer.write_probes``), so one image costs the row group that holds it: its
``(probe_id, thumbnail)`` columns are kept in the db's cache as an Arrow table. A row group
bigger than ``THUMB_GROUP_MAX_BYTES`` (a db written before row groups were bounded: the
whole file is one) is streamed in batches instead, keeping only the images asked for.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import CorruptDataError, NotFoundError
from .layout import mtime, refuse_outside
from .remote import ObjPath

#: Rows of a row group of the probes file (about 12 MB of thumbnails at 64-px noise images).
PROBE_ROW_GROUP = 1024
#: A row group with more thumbnail bytes than this is streamed, never held.
THUMB_GROUP_MAX_BYTES = 32 * 2**20
STREAM_BATCH_ROWS = 1024
_COLUMNS = ["probe_id", "thumbnail"]


class ThumbnailReader:
    """``StatsDB``'s reads of the probe thumbnails (a mixin: it uses the db's layout and cache)."""

    @contextlib.contextmanager
    def _probes_file(self, run_id: str):
        path = self.layout.file(S.PROBES, run_id)
        try:
            if isinstance(path, ObjPath):
                yield pq.ParquetFile(path.path, filesystem=path.remote.fs, buffer_size=2**20), path
            else:
                with open(refuse_outside(self._real_root, self.root, path), "rb") as handle:
                    yield pq.ParquetFile(handle, buffer_size=2**20), path
        except FileNotFoundError as exc:
            raise CorruptDataError(f"Missing file {path}: the run's probes were deleted or never written.") from exc
        except (pa.ArrowException, OSError) as exc:
            raise CorruptDataError(f"Cannot read the thumbnails in {path}: {exc} The file is truncated or corrupt.") from exc

    def _thumb_groups(self, run_id: str, key) -> list[tuple[int, int, int]]:
        """(min id, max id, thumbnail bytes) of each row group (ids unknown: the widest range)."""
        def build():
            with self._probes_file(run_id) as (pf, _):
                names = pf.schema_arrow.names
                pid, thumb = names.index("probe_id"), names.index("thumbnail")
                out = []
                for i in range(pf.metadata.num_row_groups):
                    group = pf.metadata.row_group(i)
                    stats = group.column(pid).statistics
                    known = stats is not None and stats.has_min_max
                    out.append((int(stats.min) if known else -(2**63), int(stats.max) if known else 2**63 - 1,
                                int(group.column(thumb).total_uncompressed_size)))
                return out

        return self.cache.get(("thumb_groups", *key), build)

    def _thumb_group(self, run_id: str, key, i: int, size: int, wanted: np.ndarray) -> pa.Table:
        """The (probe_id, thumbnail) rows of row group ``i``: all of it (cached) when small,
        else only the ``wanted`` ids, streamed."""
        if size <= THUMB_GROUP_MAX_BYTES:
            def build():
                with self._probes_file(run_id) as (pf, _):
                    return pf.read_row_group(i, columns=_COLUMNS)

            return self.cache.get(("thumb_group", *key, i), build)
        parts = []
        with self._probes_file(run_id) as (pf, _):
            for batch in pf.iter_batches(batch_size=STREAM_BATCH_ROWS, row_groups=[i], columns=_COLUMNS):
                keep = np.isin(batch.column(0).to_numpy(), wanted)
                if keep.any():
                    parts.append(pa.Table.from_batches([batch.filter(pa.array(keep))]))
        return pa.concat_tables(parts) if parts else pa.table({"probe_id": pa.array([], pa.int64()), "thumbnail": pa.array([], pa.binary())})

    def thumbnails_of(self, probe_ids, run: str | None = None) -> dict[int, bytes]:
        """PNG bytes of the given probe images (ids the run lacks are left out)."""
        run_id = self.resolve_run(run)
        key = (run_id, mtime(self.layout.file(S.PROBES, run_id)))
        wanted = np.unique(np.asarray(list(probe_ids), dtype=np.int64))
        found: dict[int, bytes] = {}
        for i, (lo, hi, size) in enumerate(self._thumb_groups(run_id, key)):
            here = wanted[(wanted >= lo) & (wanted <= hi)]
            if not here.size:
                continue
            group = self._thumb_group(run_id, key, i, size, here)
            ids = group.column("probe_id").to_numpy()
            for row in np.flatnonzero(np.isin(ids, here)):
                found[int(ids[row])] = group.column("thumbnail")[int(row)].as_py()
        return found

    def thumbnail(self, probe_id: int, run: str | None = None) -> bytes:
        """PNG bytes of one probe image."""
        try:
            pid = int(probe_id)
        except (TypeError, ValueError):
            raise NotFoundError(f"Unknown probe image {probe_id!r}: a probe image id is an integer.") from None
        png = self.thumbnails_of([pid], run).get(pid)
        if png is None:
            raise NotFoundError(f"Unknown probe image {pid}; the run has {len(self.probes(run))} probe images.")
        return png
