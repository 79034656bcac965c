"""Tests of the sweep runner training/experiments.py: the CAM mass analysis, the run order, the
table on crafted results, and a tiny resumable sweep (2 configs x 1 seed, 1 epoch)."""
import json

import numpy as np
import pytest

from keras_dgdm.data.arrays import epoch_arrays
from training import experiments as E  # the repository root is on the path (pytest.ini)
from keras_dgdm.train.recipes import RECIPES


# ----------------------------------------------------------------------------------------------
# cam_mass_fractions
# ----------------------------------------------------------------------------------------------


def test_cam_mass_fractions_crafted():
    cams = np.zeros((2, 4, 4))
    cams[0, 0, 0] = 3.0  # inside the part box (0,0)-(1,1)
    cams[0, 3, 3] = 1.0  # in the object box only
    cams[1, 2, 2] = 2.0  # outside the part box, inside the object box (0,0)-(2,2)
    cams[1, 3, 0] = 2.0  # outside both
    obj = [[0, 0, 3, 3], [0, 0, 2, 2]]
    part = [[0, 0, 1, 1], [0, 0, 1, 1]]
    out = E.cam_mass_fractions(cams, obj, part)
    assert out["mass_in_part"] == pytest.approx((0.75 + 0.0) / 2)
    assert out["mass_in_object"] == pytest.approx((1.0 + 0.5) / 2)
    # areas with inclusive corners: part 2x2 = 4/16, objects 16/16 and 9/16
    assert out["area_part"] == pytest.approx(4 / 16)
    assert out["area_object"] == pytest.approx((16 / 16 + 9 / 16) / 2)
    # peaks: image 0 at (0,0) (part and object); image 1 first max at (2,2) (object only)
    assert out["peak_in_part"] == pytest.approx(0.5)
    assert out["peak_in_object"] == pytest.approx(1.0)


def test_cam_mass_fractions_uniform_and_zero_cams():
    cams = np.ones((1, 10, 10))
    out = E.cam_mass_fractions(cams, [[0, 0, 4, 9]], [[2, 2, 3, 3]])
    assert out["mass_in_object"] == pytest.approx(0.5)  # uniform map: the box's area share
    assert out["mass_in_part"] == pytest.approx(0.04)
    zero = E.cam_mass_fractions(np.zeros((1, 4, 4)), [[0, 0, 3, 3]], [[0, 0, 0, 0]])
    assert zero["mass_in_object"] == 0.0 and zero["peak_in_object"] == 0.0


def test_cam_mass_fractions_bad_input():
    with pytest.raises(ValueError, match="cams"):
        E.cam_mass_fractions(np.ones((4, 4)), [[0, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="part_boxes"):
        E.cam_mass_fractions(np.ones((2, 4, 4)), [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="object_boxes"):
        E.cam_mass_fractions(np.ones((1, 4, 4)), [[2, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="non-negative"):
        E.cam_mass_fractions(-np.ones((1, 4, 4)), [[0, 0, 1, 1]], [[0, 0, 1, 1]])


# ----------------------------------------------------------------------------------------------
# settings, data order, table
# ----------------------------------------------------------------------------------------------


def test_configs_follow_the_paper_rows():
    assert E.CONFIGS["sagd_stage1"].kwargs["background_threshold"] is None
    assert "background_threshold" not in E.CONFIGS["sagd_stage12"].kwargs  # layer default 0.05
    assert [E.CONFIGS[c].kwargs["block_size"] for c, _ in E.TABLE_LAYOUT[1][1]] == [
        1, 2, 3, "adaptive"]
    assert [E.CONFIGS[c].kwargs["beta"] for c, _ in E.TABLE_LAYOUT[2][1]] == [2, 2.5, 3, 3.5]
    assert [E.CONFIGS[c].kwargs.get("background_threshold", 0.05)
            for c, _ in E.TABLE_LAYOUT[3][1]] == [None, 0.02, 0.05, 0.1]
    assert all(E.CONFIGS[c].kwargs["block_size"] == 3 for c, _ in E.TABLE_LAYOUT[3][1])
    # the table's "layer default" row is the layers' actual default
    import inspect

    from keras_dgdm.layers import DGDM, SAGD

    for layer in (SAGD, DGDM):
        assert inspect.signature(layer).parameters["background_threshold"].default == 0.05
    assert E.TABLE_LAYOUT[3][1][2] == ("sagd_stage12", "0.05 (layer default)")
    # every config builds a valid layer (the layers' own argument checks)
    from keras_dgdm.layers import validate_method_kwargs

    for cfg in E.CONFIGS.values():
        validate_method_kwargs(cfg.method, cfg.kwargs)


def test_settings_for_scales_and_errors():
    assert E.settings_for("cpu")["context_strength"] == 0.5
    assert E.settings_for("cpu", context_strength=0.0)["context_strength"] == 0.0
    with pytest.raises(ValueError, match="context_strength"):
        E.settings_for("cpu", context_strength=1.5)
    gpu = E.settings_for("gpu")
    assert (gpu["image_size"], gpu["num_train"], gpu["epochs"]) == (96, 10000, 20)
    assert E.settings_for("cpu", epochs=2, image_size=None)["epochs"] == 2
    with pytest.raises(ValueError, match="scale"):
        E.settings_for("tpu")
    with pytest.raises(ValueError, match="epoch"):
        E.settings_for("cpu", epoch=3)


def test_run_order_main_first_then_ablations_by_seed():
    order = E.run_order(["cam", "dgdm_beta2", "adl", "sagd_stage12_block1"], [0, 1])
    assert order == [("cam", 0), ("adl", 0), ("cam", 1), ("adl", 1),
                     ("dgdm_beta2", 0), ("sagd_stage12_block1", 0),
                     ("dgdm_beta2", 1), ("sagd_stage12_block1", 1)]


def test_epoch_arrays_deterministic_flips():
    images = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    labels = np.array([0, 1])
    x1, y1 = epoch_arrays(images, labels, seed=5, epoch=2)
    x2, y2 = epoch_arrays(images, labels, seed=5, epoch=2)
    np.testing.assert_array_equal(x1, x2)
    for x, y in zip(x1, y1):  # each is its own image, mirrored or not
        src = images[y].astype("float32")
        assert np.array_equal(x, src) or np.array_equal(x, src[:, ::-1])
    assert x1.dtype == np.float32 and y1.dtype == np.int32


def _fake_result(config, seed, values, mass=(0.3, 0.9)):
    keys = [k for k, _ in E.METRICS]
    return {"config": config, "seed": seed, "settings": E.settings_for("smoke"),
            "test": dict(zip(keys, values)),
            "cam_mass": {"mass_in_part": mass[0], "mass_in_object": mass[1]}}


def test_table_mean_and_sample_std(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, v in ((0, 50.0), (1, 60.0)):
        (runs / f"cam-seed{seed}.json").write_text(json.dumps(
            _fake_result("cam", seed, [v, v + 10, v - 10, v])))
    dgdm = _fake_result("dgdm", 0, [1, 2, 3, 4])
    # two method layers: the column reports the one nearest the CAM (the last spatial one)
    dgdm["drop_stats"] = {"first": {"dropped_by_drop_mask": 0.9},
                          "last": {"dropped_by_drop_mask": 0.25, "channel_candidates": 0.5}}
    (runs / "dgdm-seed0.json").write_text(json.dumps(dgdm))
    rows = E.write_outputs(str(tmp_path))
    cam = next(r for r in rows if r["config"] == "cam")
    assert cam["top1_clas_mean"] == pytest.approx(55.0)
    assert cam["top1_clas_std"] == pytest.approx(np.sqrt(50.0))  # ddof=1: 7.07
    assert cam["mass_in_part_mean"] == pytest.approx(30.0)
    md = (tmp_path / "results.md").read_text()
    assert "| CAM | - | 0,1 | 55.00 ± 7.07 | 65.00 ± 7.07 | 45.00 ± 7.07 |" in md
    assert next(l for l in md.splitlines() if l.startswith("| CAM |")).endswith("| - |")
    assert "| 25.00 (1 seed) |" in md  # dgdm's drop-mask coverage, last layer
    assert "1.00 (1 seed)" in md and "not run" in md  # dgdm: 1 seed; ablations: none
    # the shared rows (block_size=3, beta=3) reuse the main rows' runs
    assert sum(1 for r in rows if r["config"] == "dgdm") == 2
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "55.000" in (tmp_path / "results.csv").read_text()


# ----------------------------------------------------------------------------------------------
# A tiny sweep, resumed
# ----------------------------------------------------------------------------------------------


def test_sweep_smoke_resumes_and_refuses_other_settings(tmp_path):
    settings = E.settings_for("smoke", num_train=16, num_val=8, num_test=8)
    new = []
    # A time budget shorter than one run: the first run still starts, then the sweep stops
    # cleanly between runs and says how many are left.
    lines = []
    partial = E.run_sweep(str(tmp_path), settings, ["cam", "dgdm"], [0], log=lines.append,
                          after_run=new.append, time_budget=1e-6)
    assert [r["config"] for r in partial] == ["cam"] and len(new) == 1
    assert "stopping with 1 run(s) left" in lines[-1]
    assert not (tmp_path / "runs" / "dgdm-seed0.json").exists()
    with pytest.raises(ValueError, match="time_budget"):
        E.run_sweep(str(tmp_path), settings, ["cam"], [0], log=lambda s: None, time_budget=0)
    # rerun without a budget: only the missing run trains
    results = E.run_sweep(str(tmp_path), settings, ["cam", "dgdm"], [0], log=lambda s: None,
                          after_run=new.append)
    assert [r["config"] for r in results] == ["cam", "dgdm"] and len(new) == 2
    for r in results:
        path = tmp_path / "runs" / f"{r['config']}-seed0.json"
        saved = json.loads(path.read_text())
        assert saved["settings"] == settings and saved["method"] == r["config"]
        for key, _ in E.METRICS:
            assert 0.0 <= saved["test"][key] <= 100.0
        assert 0.0 <= saved["test"]["cam_threshold_from_val"] < 1
        assert len(saved["history"]["loss"]) == 1  # one epoch
        assert (tmp_path / "figures" / f"{r['config']}-seed0.png").stat().st_size > 0
        # the part lies inside the object, so its box holds at most the object box's mass
        assert 0.0 <= saved["cam_mass"]["mass_in_part"] <= saved["cam_mass"]["mass_in_object"] + 1e-9
        if r["config"] == "cam":
            assert saved["drop_stats"] == {}
        else:  # a DGDM layer at each synthetic recipe position, measured on the test images
            assert len(saved["drop_stats"]) == len(RECIPES["synthetic"]["insert_at"]) == 2
            for stats in saved["drop_stats"].values():
                assert stats["layer"] == "DGDM" and stats["num_images"] == 8
                assert 0.0 <= stats["dropped_by_drop_mask"] <= 1.0
    md = (tmp_path / "results.md").read_text()
    assert "| CAM | - | 0 |" in md and "(1 seed)" in md
    # rerun: nothing is trained again
    lines = []
    again = E.run_sweep(str(tmp_path), settings, ["cam", "dgdm"], [0], log=lines.append,
                        after_run=new.append)
    assert len(new) == 2 and all("skipped" in line for line in lines)
    assert again[0]["test"] == results[0]["test"]
    # a run file from before context_strength was a setting (no such key) counts as the
    # default 0.5 and still resumes; another strength is "other settings"
    path = tmp_path / "runs" / "cam-seed0.json"
    old = json.loads(path.read_text())
    del old["settings"]["context_strength"]
    path.write_text(json.dumps(old))
    assert E.load_finished(str(path), settings)["test"] == results[0]["test"]
    with pytest.raises(ValueError, match=r"cam-seed0\.json.*context_strength"):
        E.load_finished(str(path), dict(settings, context_strength=0.0))
    # a run file of the first benchmark version (no benchmark_version key) never resumes
    del old["settings"]["benchmark_version"]
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"cam-seed0\.json.*benchmark_version saved 1 now 2"):
        E.load_finished(str(path), settings)
    # other settings in the same directory: an error naming the file, before any training
    with pytest.raises(ValueError, match=r"cam-seed0\.json.*epochs"):
        E.run_sweep(str(tmp_path), dict(settings, epochs=2), ["cam"], [0], log=lambda s: None)


def test_make_data_passes_the_generator_settings():
    from keras_dgdm.data import synthetic

    base = E.settings_for("smoke", num_train=6, num_val=2, num_test=2)
    assert base["body_hint"] == 0.75 and base["show"] == "all" and base["benchmark_version"] == 2
    for key, value in (("context_strength", 0.0), ("context_strength", 1.0), ("body_hint", 0.2),
                       ("show", "body")):
        got = E.make_data(dict(base, **{key: value}))["train"]
        want = synthetic.generate(6, image_size=base["image_size"], num_classes=10,
                                  seed=[0, 0], **{key: value})
        assert np.array_equal(got.images, want.images)
    assert not np.array_equal(E.make_data(dict(base, context_strength=0.0))["train"].images,
                              E.make_data(dict(base, context_strength=1.0))["train"].images)
