"""Throughput of the input pipelines.

1. Writes N JPEGs (CUB-like sizes, 500x375 and 375x500) in a raw CUB_200_2011 layout in a
   temporary folder, loads it with ``keras_dgdm.data.load("cub", "train", ...)`` (validation
   pass included, timed apart) and prints the images/s of ``train_pipeline`` at 224 (decode,
   resize 256, random crop 224, flip), after one warm-up pass.
2. Prints the images/s of the numpy synthetic generator at 64x64 and 96x96.

    python benchmarks/bench_pipeline.py --num-images 512 --batch-size 64
"""
import argparse
import os
import tempfile
import time

import numpy as np


def write_raw_cub(root, num_images, num_classes=10, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = os.path.join(root, "CUB_200_2011")
    rows = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [],
            "bounding_boxes.txt": []}
    # smooth random images compress like photos (not like white noise)
    small = rng.integers(0, 255, (num_images, 12, 16, 3), dtype=np.uint8)
    for i in range(num_images):
        c = i % num_classes
        folder = os.path.join(base, "images", f"{c + 1:03d}.class")
        os.makedirs(folder, exist_ok=True)
        w, h = (500, 375) if i % 3 else (375, 500)
        img = Image.fromarray(small[i]).resize((w, h), Image.BILINEAR)
        rel = f"{c + 1:03d}.class/img_{i:05d}.jpg"
        img.save(os.path.join(base, "images", rel), quality=90)
        n = i + 1
        rows["images.txt"].append(f"{n} {rel}")
        rows["image_class_labels.txt"].append(f"{n} {c + 1}")
        rows["train_test_split.txt"].append(f"{n} 1")
        rows["bounding_boxes.txt"].append(f"{n} 20.0 30.0 200.0 150.0")
    for name, lines in rows.items():
        with open(os.path.join(base, name), "w") as f:
            f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--synthetic-images", type=int, default=2000)
    args = parser.parse_args()

    from keras_dgdm.data import synthetic

    for size in (64, 96):
        synthetic.generate(64, image_size=size, seed=0)  # warm-up
        t = time.perf_counter()
        synthetic.generate(args.synthetic_images, image_size=size, seed=0)
        dt = time.perf_counter() - t
        print(f"synthetic.generate {size}x{size}: {args.synthetic_images / dt:.0f} images/s "
              f"({args.synthetic_images} images in {dt:.2f} s)")

    import tensorflow as tf

    from keras_dgdm import data as D

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_raw_cub(tmp, args.num_images)
        print(f"wrote {args.num_images} JPEGs in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        data = D.load("cub", "train", data_dir=tmp, holdout_fraction=0)
        dt = time.perf_counter() - t
        print(f"load (index + validation pass, verify='header'): {dt:.2f} s, "
              f"{data.num_examples / dt:.0f} images/s")
        ds = D.train_pipeline(data, args.image_size, args.batch_size, seed=0)
        for _ in ds:  # warm-up pass (graph tracing, file cache)
            pass
        t = time.perf_counter()
        n = 0
        for images, _ in ds:
            n += int(images.shape[0])
        dt = time.perf_counter() - t
        print(f"raw-CUB train_pipeline at {args.image_size}: {n / dt:.0f} images/s "
              f"({n} images in {dt:.2f} s, batch {args.batch_size}, "
              f"{os.cpu_count()} CPUs, tf {tf.__version__})")


if __name__ == "__main__":
    main()
