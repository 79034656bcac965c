"""keras-dgdm: weakly supervised object localization with the Dual-attention Guided Dropblock Module."""
from setuptools import find_packages, setup

setup(
    name="keras-dgdm",
    version="0.1.0",
    description=(
        "Keras 3 / TensorFlow 2 layers, models, evaluation and training for weakly supervised "
        "object localization with the Dual-attention Guided Dropblock Module (DGDM)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_dgdm", "keras_dgdm.*"]),
    # small_vgg pretrained on the synthetic source task (training/pretrain.py remakes it)
    package_data={"keras_dgdm": ["weights/*.weights.h5"]},
    python_requires=">=3.11",  # tested on 3.11; the test extra's jax 0.10 needs it
    # Floors: the suite passes with every package at its floor at once (and at today's
    # versions); README "Run the tests" has the combination. Older ones fail it: TensorFlow
    # 2.18 / 2.19 pin protobuf 5, with which tfds' tensorflow-metadata no longer loads; keras
    # 3.8 calls jax.spmd_mode, gone in jax 0.10; jax 0.10 needs numpy 2 and scipy 1.14.
    install_requires=[
        "tensorflow>=2.20",  # tf.data, tfds, SavedModel export, tf.distribute
        "keras>=3.10",
        "numpy>=2.0",
        "numba>=0.60",  # the nested-threshold box search (see keras_dgdm/boxes/)
        "matplotlib>=3.9",  # figures (keras_dgdm/viz.py)
        "pillow>=10.4",  # image decoding checks in the raw-folder loaders
        # CUB-200-2011 and Stanford Cars through tfds (before 4.9.10 its caltech_birds2011
        # downloads from Google Drive, a layout the tests do not cover).
        "tensorflow-datasets>=4.9.10",
        # What tensorflow-datasets needs to download and prepare caltech_birds2011 / cars196 but
        # does not declare: importlib_resources (tfds / etils on the download_and_prepare path),
        # cv2 (caltech_birds2011 decodes the segmentation masks with it) and scipy (cars196
        # reads its .mat annotations with scipy.io). Tested: tests/test_data_tfds.py.
        "importlib_resources>=6.0",
        "opencv-python-headless>=4.10",
        "scipy>=1.14",
        "tensorboard>=2.20",  # the run directory's logs/ (TensorFlow 2.21 no longer pulls it in)
    ],
    extras_require={
        # jax: the JAX-backend runs of the backend-agnostic tests and the 2-process training
        # test (Keras' numpy backend imports jax too); the tested range.
        "test": ["pytest>=8", "jax>=0.10,<0.11"],
    },
)
