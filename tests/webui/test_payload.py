"""Lean payloads: the compact binary columns the browser reads (``format=lean``) say what the
stored data says at every step, within their stated precision, and stay within their byte
budgets; the framing's encodings on their own; one thumbnail read without the others."""

from __future__ import annotations

import numpy as np
import pytest

from deepviz.errors import UntrustedDataError

from .conftest import assert_api_error
from .test_embedding import decode, wait_done

QUANTUM = 1 / 65534  # the uint16 encoding's step, as a share of the range


def api(run_id: str, path: str) -> str:
    return f"/api/runs/{run_id}/{path}"


def two_steps(client, run_id) -> tuple[int, int]:
    steps = [s["step"] for s in client.get(f"/api/runs/{run_id}").get_json()["steps"]]
    return steps[0], steps[-1]


def test_lean_predictions_say_what_the_full_ones_say_at_every_step(client, run_id):
    seen = []
    for step in two_steps(client, run_id):
        meta, full = decode(client.get(api(run_id, f"steps/{step}/predictions")).data)
        res = client.get(api(run_id, f"steps/{step}/predictions?format=lean"))
        lean_meta, lean = decode(res.data)
        assert lean_meta == {**meta, "format": "lean"} and lean_meta["step"] == step
        np.testing.assert_array_equal(lean["pred"], full["pred"])
        np.testing.assert_array_equal(lean["correct"], full["correct"])
        np.testing.assert_allclose(lean["confidence"], full["confidence"], rtol=0, atol=QUANTUM / 2 + 1e-7)
        n = meta["n"]
        assert len(res.data) <= 64 + 3 * n + (n + 7) // 8 + 512  # pred 1, confidence 2 bytes, correct 1 bit; the header
        seen.append(full)
    assert (seen[0]["pred"] != seen[1]["pred"]).any()  # the two steps' predictions differ: each answer is its own step's


def test_lean_probes_are_the_json_ones(client, run_id):
    as_json = client.get(api(run_id, "probes")).get_json()
    meta, lean = decode(client.get(api(run_id, "probes?format=lean")).data)
    assert lean["probe_id"].dtype == np.int32 and lean["label"].dtype == np.uint8 and meta["n"] == len(as_json["probe_id"])
    assert lean["probe_id"].tolist() == as_json["probe_id"] and lean["label"].tolist() == as_json["label"]


def test_lean_layout_is_the_stored_one_within_a_quantum_of_its_extent(client, run_id):
    q = "layer=fc1&method=pca&seed=0"
    wait_done(client, run_id, q)
    layouts = []
    for step in two_steps(client, run_id):
        _, full = decode(client.get(api(run_id, f"steps/{step}/projection?{q}")).data)
        meta, lean = decode(client.get(api(run_id, f"steps/{step}/projection?{q}&format=lean")).data)
        assert meta["format"] == "lean" and meta["step"] == step and lean["xy"].shape == full["xy"].shape
        extent = np.ptp(full["xy"], axis=0)
        assert (np.abs(lean["xy"] - full["xy"]) <= extent * QUANTUM / 2 + 1e-5).all()
        layouts.append(full["xy"])
    assert not np.allclose(layouts[0], layouts[1])


def test_a_format_a_route_does_not_offer_is_refused(client, run_id):
    assert_api_error(client.get(api(run_id, "probes?format=csv")), 400, r"Parameter 'format' must be one of json, lean; got 'csv'")
    assert_api_error(client.get(api(run_id, "steps/0/predictions?format=json")), 400, r"Parameter 'format' must be one of binary, lean")


# ---------------------------------------------------------------- the framing's encodings


def framed(arrays) -> dict:
    from webui import framing

    with __import__("flask").Flask(__name__).app_context():
        return decode(framing.binary(arrays).get_data())[1]


def test_quantised_columns_keep_their_range_and_their_nans():
    from webui import framing

    xy = np.array([[-3.0, 10.0], [5.0, 10.5], [np.nan, 11.0], [1.0, np.inf]], np.float32)
    back = framed({"xy": framing.quantised(xy), "p": framing.unit_interval([0.0, 0.25, 1.0, np.nan])})
    finite = np.isfinite(xy)
    assert (np.isnan(back["xy"]) == ~finite).all()  # what was not finite is NaN, never a made-up number
    assert (np.abs(back["xy"][finite] - xy[finite]) <= np.array([8.0, 1.0] * 4)[finite.ravel()] * QUANTUM).all()
    assert back["xy"][0, 0] == -3.0 and back["xy"][1, 0] == 5.0  # the ends of each axis's range are exact
    np.testing.assert_allclose(back["p"][:3], [0.0, 0.25, 1.0], atol=QUANTUM)
    assert np.isnan(back["p"][3])


def test_bits_classes_and_ids_take_the_smallest_type_that_holds_them():
    from webui import framing

    flags = np.arange(13) % 3 == 0  # not a multiple of 8
    back = framed({"b": framing.bits(flags), "c": framing.classes([3, 255], 256), "w": framing.classes([300], 1000), "i": framing.ids([2**40])})
    assert back["b"].tolist() == flags.astype(int).tolist()
    assert back["c"].dtype == np.uint8 and back["w"].dtype == np.uint16 and back["w"][0] == 300
    assert back["i"].dtype == np.float64 and back["i"][0] == 2**40
    assert framing.ids([7, 2**31 - 1]).raw.dtype == np.int32
    with pytest.raises(UntrustedDataError, match=r"Ids up to 9007199254740993 cannot be sent to the browser exactly; at most 9007199254740991 can\. Give the probe images ids below 2\*\*53"):
        framing.ids([2**53 + 1])
