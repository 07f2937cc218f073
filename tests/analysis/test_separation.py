import numpy as np
import pytest

from deepviz.analysis.separation import SEPARATED, separation, separation_over_steps
from deepviz.errors import ConfigurationError


def _steps(n_steps: int, k: int, seed: int, n_per: int = 30, n_groups: int = 3, dim: int = 12):
    """The same images at n_steps steps: one shapeless cloud before step k, apart from step k on."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    rng.shuffle(groups)
    centres = rng.normal(size=(n_groups, dim)) * 6
    steps = []
    for t in range(n_steps):
        noise = rng.normal(size=(groups.size, dim))
        steps.append((noise + (centres[groups] if t >= k else 0)).astype(np.float32))
    return steps, groups


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed,k", [(0, 2), (1, 4), (2, 1), (3, 5)])
def test_a_grouping_separable_from_step_k_scores_low_before_and_high_after(metric, seed, k):
    steps, groups = _steps(7, k, seed)
    values = separation_over_steps(steps, groups, metric)
    assert len(values) == 7
    assert all(v < 0.1 for v in values[:k]), values
    assert all(v > SEPARATED + 0.2 for v in values[k:]), values
    assert all(-1 <= v <= 1 for v in values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabelling_the_groups_changes_nothing(seed):
    steps, groups = _steps(4, 2, seed)
    rng = np.random.default_rng(seed)
    relabel = rng.permutation([5, 9, 17])  # a permutation onto other, non-contiguous ids
    assert separation_over_steps(steps, relabel[groups]) == pytest.approx(separation_over_steps(steps, groups), abs=1e-6)


def test_identical_steps_give_identical_values():
    steps, groups = _steps(3, 1, 0)
    same = [steps[2], steps[2].copy(), steps[2]]
    values = separation_over_steps(same, groups)
    assert values[0] == values[1] == values[2] == separation(steps[2], groups)


def test_an_unreadable_step_is_a_gap_not_an_error():
    steps, groups = _steps(3, 1, 0)
    values = separation_over_steps([steps[0], None, steps[2]], groups)
    assert values[1] is None and values[0] is not None and values[2] == separation(steps[2], groups)


def test_bad_inputs_are_refused_with_what_was_given():
    steps, groups = _steps(2, 1, 0)
    with pytest.raises(ConfigurationError, match="activations is empty"):
        separation_over_steps([], groups)
    with pytest.raises(ConfigurationError, match="All 2 steps are None"):
        separation_over_steps([None, None], groups)
    with pytest.raises(ConfigurationError, match=r"activations\[1\] has 89 rows but groups has 90"):
        separation_over_steps([steps[0], steps[1][:-1]], groups)
    with pytest.raises(ConfigurationError, match="groups has 1 entries but the data has 90 rows"):
        separation_over_steps(steps, groups[:1])
    with pytest.raises(ConfigurationError, match="needs 2..89 groups among 90 images; groups has 1"):
        separation_over_steps(steps, np.zeros_like(groups))
    with pytest.raises(ConfigurationError, match="groups has 90"):
        separation(steps[0], np.arange(90))
    with pytest.raises(ConfigurationError, match="Unknown metric 'manhattan'. Available: cosine, euclidean"):
        separation_over_steps(steps, groups, "manhattan")
    with pytest.raises(ConfigurationError, match="NaN or infinite"):
        separation(np.full((4, 2), np.nan), [0, 0, 1, 1])
    with pytest.raises(ConfigurationError, match="must be a 2-D array"):
        separation(np.zeros(4), [0, 0, 1, 1])
