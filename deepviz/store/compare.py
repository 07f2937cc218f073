"""``StatsDB.compare``: the per-image agreement table of two runs, as one DuckDB query over the views.

The same query is what the README shows for SQL users; the web UI's comparison page computes the same
columns from numpy (``deepviz.analysis.compare``), and a test checks that both agree.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError

#: Per run: the first step (up to the compared one) from which an image is right at every later step.
#: An image wrong at the compared step has none (NULL). ``{r}`` and ``{s}`` name the run and step parameters.
_LEARNED = """
    SELECT probe_id, min(step) FILTER (WHERE step > last_wrong) AS learned
    FROM (SELECT probe_id, step,
                 coalesce(max(CASE WHEN NOT correct THEN step END) OVER (PARTITION BY probe_id), -1) AS last_wrong
          FROM predictions WHERE run_id = ${r} AND step <= ${s})
    GROUP BY probe_id"""

_QUERY = f"""
WITH a AS (SELECT probe_id, label, pred, correct FROM predictions WHERE run_id = $run_a AND step = $step_a),
     b AS (SELECT probe_id, label, pred, correct FROM predictions WHERE run_id = $run_b AND step = $step_b),
     la AS ({_LEARNED.format(r="run_a", s="step_a")}),
     lb AS ({_LEARNED.format(r="run_b", s="step_b")})
SELECT a.probe_id, a.label, a.pred AS pred_a, b.pred AS pred_b, a.correct AS correct_a, b.correct AS correct_b,
       a.pred = b.pred AS agree, la.learned AS learned_a, lb.learned AS learned_b
FROM a JOIN b ON a.probe_id = b.probe_id AND a.label = b.label
LEFT JOIN la ON la.probe_id = a.probe_id
LEFT JOIN lb ON lb.probe_id = a.probe_id
ORDER BY a.probe_id
"""


class CompareReader:
    """Mixed into ``StatsDB``: reads that put two runs side by side."""

    def compare(self, run_a: str, run_b: str, step_a: int | None = None, step_b: int | None = None):
        """One row per probe image both runs hold, at ``step_a`` of run A and ``step_b`` of run B (their last
        steps by default): ``probe_id, label, pred_a, pred_b, correct_a, correct_b, agree, learned_a, learned_b``.

        ``learned_*`` is the first step from which the image is right at every later step up to the compared
        one (NA when it is wrong there). ``frame.attrs`` holds both run ids and steps, and the probe counts
        ``n_a``, ``n_b`` and ``shared``. Runs whose probe sets share no image are refused.
        """
        ra, rb = self.resolve_run(run_a), self.resolve_run(run_b)
        sa, sb = self._compared_step(ra, step_a), self._compared_step(rb, step_b)
        ids_a, ids_b = self.probes(ra)["probe_id"].to_numpy(), self.probes(rb)["probe_id"].to_numpy()
        with self.connect() as con:
            frame = con.execute(_QUERY, {"run_a": ra, "run_b": rb, "step_a": sa, "step_b": sb}).df()
        if frame.empty:
            raise ConfigurationError(
                f"Runs {ra!r} ({ids_a.size} probe images) and {rb!r} ({ids_b.size}) share no probe image with the "
                f"same label ({np.intersect1d(ids_a, ids_b).size} shared ids): compare runs of one dataset and probe "
                "set (deepviz train keeps the probe set fixed across --seed)."
            )
        frame["learned_a"] = frame["learned_a"].astype("Int64")
        frame["learned_b"] = frame["learned_b"].astype("Int64")
        frame.attrs.update(run_a=ra, run_b=rb, step_a=sa, step_b=sb, n_a=int(ids_a.size), n_b=int(ids_b.size),
                           shared=len(frame))
        return frame

    def _compared_step(self, run_id: str, step: int | None) -> int:
        steps = self.steps(run_id)
        if not steps:
            raise ConfigurationError(f"Run {run_id!r} has no committed step yet; compare it once a first snapshot is written.")
        return self.require_step(run_id, steps[-1] if step is None else step)
