"""What the Recorder's writer thread does: a snapshot's host copies and write, and the warnings it hands back.

A mixin of ``Recorder`` (which holds the writer, the probe and the step sets
used here). The jobs run on the ``BackgroundWriter``'s thread; what they have
to say waits in ``_warnings`` and is warned on the caller's thread by
``_surface``, which also raises there what a job raised.
"""

from __future__ import annotations

import warnings

from .capture import Captured, serialise_state


class SnapshotWrites:
    """The write side of ``Recorder``: jobs for its ``BackgroundWriter``, and their warnings."""

    def _write_job(self, step: int, epoch: int, trigger: str, captured: Captured, frozen, metrics: dict) -> None:
        """On the writer's thread: the copies to the host, then the write; the step is then no longer queued."""
        try:
            result = captured.to_host()
            self._warn_nonfinite(result.nonfinite, step)
            weights, state = frozen
            weights = {name: w.cpu().numpy() for name, w in weights.items()}
            state = serialise_state(state) if state is not None else None
            if self._safe_write(lambda: self._write_snapshot(step, epoch, trigger, result, weights, metrics, state),
                                step):
                self.committed.add(step)
            else:
                self._failed.add(step)
        finally:
            self.queued.pop(step, None)

    def _write_snapshot(self, step: int, epoch: int, trigger: str, result, weights, metrics: dict, state) -> None:
        """What one snapshot stores: the capture, the conv weights, metrics and (maybe) the state dict."""
        self.writer.write_snapshot(
            self.run_id,
            step,
            epoch=epoch,
            trigger=trigger,
            probe_ids=self.probe.ids,
            labels=self.probe.labels.numpy(),
            probs=result.probs,
            loss=result.loss,
            activations=result.activations,
            weights=weights,
            metrics=metrics,
            nonfinite_layers=result.nonfinite,
            state=state,
            activation_dtype=self.activation_dtype,
        )

    def _warn_nonfinite(self, bad: list[str], step: int) -> None:
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            self._warnings.append(
                f"deepviz: NaN or Inf in {', '.join(bad)} at step {step}. The values are stored as they are and the "
                "step is flagged (steps.nonfinite_layers); this warning is given once per run."
            )

    def _safe_write(self, fn, step: int | None = None) -> bool:
        """Run a write; an OS error (disk full, permissions) skips it with one warning and training goes on."""
        try:
            fn()
            return True
        except OSError as exc:
            if not self._warned_write:
                self._warned_write = True
                where = f"snapshot at step {step}" if step is not None else "metadata write"
                self._warnings.append(
                    f"deepviz: {where} skipped: {exc}. Nothing partial was left in {self.db}; training goes on. "
                    "Free space or fix permissions to resume snapshots (this warning is given once)."
                )
            return False

    def _surface(self) -> None:
        """On the caller's thread: warn what the writer's thread has to say, and raise what it raised."""
        while self._warnings:
            warnings.warn(self._warnings.pop(0), stacklevel=3)
        self._writes.check()
