"""test_promptad.py - the Python package against the command line on the fixture model of tests/api/make_model.sh.

Environment (set by tests/api/run_pytest.sh under ctest): PROMPTAD_LIB (the build's libpromptad.so), PROMPTAD_BIN
(the promptad binary), PROMPTAD_TEST_WORK (the fixture folder: results/synth/weave/k1/seed0/model, data/, model/).
"""
import glob
import os
import subprocess
import threading
import time

import promptad  # first: it chooses the OpenBLAS kernels before numpy loads OpenBLAS

import numpy as np  # noqa: E402
import pytest  # noqa: E402

WORK = os.environ.get("PROMPTAD_TEST_WORK", "")
BIN = os.environ.get("PROMPTAD_BIN", "")
MODEL = os.path.join(WORK, "results", "synth", "weave", "k1", "seed0", "model")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(MODEL, "model.json")) or not os.path.isfile(BIN),
                                reason="needs PROMPTAD_TEST_WORK (tests/api/make_model.sh) and PROMPTAD_BIN")


def images():
    return sorted(glob.glob(os.path.join(WORK, "data", "weave", "test", "*", "*.png")))


def cli_predict(paths, out):
    args = [BIN, "predict", "--model", MODEL, "--out", out, "--device", "cpu", "--no-heatmaps"]
    for p in paths:
        args += ["--input", p]
    # the environment carries the OPENBLAS_CORETYPE the package chose at import: the same kernels as ours
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [l.rstrip("\n").split(",") for l in open(os.path.join(out, "predictions.csv"))][1:]
    return [r[0] for r in rows], np.array([np.float32(float(r[1])) for r in rows]), [r[3] for r in rows]


def test_scores_match_the_command_line_bit_for_bit(tmp_path):
    paths = images()
    assert len(paths) >= 6
    cli_paths, cli_scores, cli_decisions = cli_predict(paths, str(tmp_path / "pred"))
    assert cli_paths == paths
    with promptad.Detector(MODEL, device="cpu") as det:
        res = det.score(paths)
    scores = np.array([r.score for r in res], np.float32)
    # %.9g round-trips a float32, so equal strings mean equal bits
    assert scores.tobytes() == cli_scores.tobytes(), (scores, cli_scores)
    assert ["anomalous" if r.anomalous else "normal" for r in res] == cli_decisions


def test_arrays_score_like_files():
    pil = pytest.importorskip("PIL.Image")
    paths = images()
    arrays = [np.asarray(pil.open(p).convert("RGB")) for p in paths]
    with promptad.Detector(MODEL, device="cpu") as det:
        s1, m1, k1 = det.score_batch(paths)
        s2, m2, k2 = det.score_batch(arrays)
        R = det.map_size
    assert s1.tobytes() == s2.tobytes() and m1.tobytes() == m2.tobytes() and k1.tobytes() == k2.tobytes()
    assert m1.shape == (len(paths), R, R) and m1.dtype == np.float32 and k1.dtype == np.uint8
    assert np.isfinite(m1).all() and set(np.unique(k1)) <= {0, 1}
    # the mask is the map thresholded at the mask threshold
    with promptad.Detector(MODEL, device="cpu") as det:
        thr = det.info["mask_threshold"]
        np.testing.assert_array_equal(k1, (m1.astype(np.float64) >= thr).astype(np.uint8))
        one = det.score(paths[3])
    assert isinstance(one, promptad.Detection) and one.map.shape == (R, R)


def test_info_and_errors(tmp_path):
    with promptad.Detector(MODEL, device="cpu", mask_threshold=0.5) as det:
        assert det.info["cls"] == "weave" and det.info["k"] == 1 and det.info["mask_threshold"] == 0.5
        with pytest.raises(ValueError):
            det.score(np.zeros((8, 8), np.uint8))
        with pytest.raises(promptad.PromptadError) as e:
            det.score(str(tmp_path / "missing.png"))
        assert "missing.png" in str(e.value)
    with pytest.raises(promptad.PromptadError) as e:
        promptad.Detector(str(tmp_path / "no-model"))
    assert "not a promptad model folder" in str(e.value) and e.value.status == -2


def tiny_run_overrides(out):
    return {"model.weights": os.path.join(WORK, "model", "tiny-random.safetensors"),
            "model.vocab": os.path.join(WORK, "model", "byte-vocab.txt.gz"),
            "data.root": os.path.join(WORK, "data"), "data.synth.classes": 1, "data.synth.size": 128,
            "data.synth.train": 2, "data.synth.test_good": 3, "data.synth.test_bad": 3, "run.resolution": 128,
            "run.shots": [1], "run.seeds": [0], "run.epochs": 1, "output.heatmaps": 0, "output.dir": out}


def test_run_returns_the_summary_and_releases_the_gil(tmp_path):
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "configs", "demo.yaml")
    result, ticks, inflight = {}, [0], threading.Event()

    def work():
        inflight.set()
        result["rows"] = promptad.run(config, tiny_run_overrides(str(tmp_path / "res")), as_dataframe=False)
        inflight.clear()

    t = threading.Thread(target=work)
    t.start()
    inflight.wait()
    while t.is_alive():  # this thread keeps running while the other one is inside the native call
        if inflight.is_set():
            ticks[0] += 1
        time.sleep(0.001)
    t.join()
    assert ticks[0] > 100, "the main thread did not progress during the native run (GIL held?)"
    rows = result["rows"]
    assert rows.results_dir.endswith(os.path.join("res", "synth"))
    csv_lines = open(os.path.join(rows.results_dir, "summary.csv")).read().splitlines()
    assert len(rows) == len(csv_lines) - 1 and len(rows) > 0
    first = dict(zip(csv_lines[0].split(","), csv_lines[1].split(",")))
    assert rows[0]["metric"] == first["metric"] and rows[0]["mean"] == float(first["mean"])
    assert os.path.isfile(os.path.join(str(tmp_path / "res"), "report.html"))


def test_run_errors_carry_the_message(tmp_path):
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "configs", "demo.yaml")
    with pytest.raises(promptad.PromptadError) as e:
        promptad.run(config, ["run.epochz=3"])
    assert "run.epochz" in str(e.value)
