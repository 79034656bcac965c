#!/usr/bin/env python
"""The val-split selection runs behind the 96 px sweep's regime (EXPERIMENTS.md, section 1).

    python experiments/select96/run_selection.py OUTPUT_DIR INSERT_AT NAME:METHOD:k=v,k=v [...]

Each NAME:METHOD:kwargs is trained once (seed 0) by ``training/experiments.py``'s runner at 96 px,
3,000 train / 500 val / 500 test images, from the bundled ``synthetic_source`` start, with the
method layers after INSERT_AT (comma-separated layer names, or "backbone"). Environment:
EPOCHS (default 5), DECAY (epoch of the lr step, default 4), FREEZE=1 (freeze_bn). The choices
were read on the ``val`` numbers this prints; test numbers are recorded, never used to choose.

Example (the row that picked the positions):

    python experiments/select96/run_selection.py /tmp/e3 block2_pool,block3_pool \
        s1b3:sagd:background_threshold=None,block_size=3
"""
import importlib.util
import os
import sys

from keras_dgdm.data.options import parse_value

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "experiments", os.path.join(ROOT, "training", "experiments.py"))
E = importlib.util.module_from_spec(_spec)
sys.modules["experiments"] = E  # before running it: its dataclasses look their module up
_spec.loader.exec_module(E)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out, insert_at, specs = argv[0], argv[1], argv[2:]
    names = []
    for spec in specs:
        name, method, *kv = spec.split(":") + ([""] if ":" not in spec else [])
        pairs = kv[0].split(",") if kv and kv[0] else []
        if not name or not method or len(kv) > 1 or any(p.count("=") != 1 for p in pairs):
            sys.exit(f"run_selection.py: error: bad run spec {spec!r}; expected "
                     "NAME:METHOD or NAME:METHOD:key=value,key=value")
        kwargs = {k: parse_value(v) for k, v in (pair.split("=") for pair in pairs)}
        E.CONFIGS[name] = E._cfg(name, method, name, **kwargs)
        names.append(name)
    extra = dict(image_size=96, num_train=3000, num_val=500, num_test=500,
                 epochs=int(os.environ.get("EPOCHS", 5)),
                 lr_decay_epochs=int(os.environ.get("DECAY", 4)), weights="synthetic_source",
                 freeze_bn=os.environ.get("FREEZE") == "1")
    extra["insert_at"] = "backbone" if insert_at == "backbone" else insert_at.split(",")
    settings = E.settings_for("cpu", **extra)
    E.TABLE_LAYOUT = (("selection", [(n, "") for n in names]),)
    for r in E.run_sweep(out, settings, names, [0], log=lambda l: print(l, flush=True)):
        v, m = r["val"], r["cam_mass"]
        print(f"{r['config']}: val Top-1 Clas {v['top1_clas']:.1f}, GT-known {v['gt_known_loc']:.1f}, "
              f"Top-1 Loc {v['top1_loc']:.1f}, MaxBoxAccV2 {v['max_box_acc_v2']:.1f}; CAM mass in "
              f"object box {m['mass_in_object']:.2f}, CAM peak in part box {m['peak_in_part']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
