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
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",  # Keras 3; tf.data, tfds, SavedModel export, tf.distribute
        "keras>=3.4",
        "numpy>=1.26",
        "numba>=0.59",  # the nested-threshold box search (see keras_dgdm/localization.py)
        "matplotlib>=3.7",  # figures (keras_dgdm/viz.py)
        "pillow>=10",  # image decoding checks in the raw-folder loaders
        "tensorflow-datasets>=4.9",  # CUB-200-2011 and Stanford Cars through tfds
        # What tensorflow-datasets needs to download and prepare caltech_birds2011 / cars196 but
        # does not declare: importlib_resources (tfds / etils on the download_and_prepare path),
        # cv2 (caltech_birds2011 decodes the segmentation masks with it) and scipy (cars196
        # reads its .mat annotations with scipy.io). Tested: tests/test_data_tfds.py.
        "importlib_resources>=6",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
        "tensorboard>=2.16",  # the run directory's logs/ (TensorFlow 2.21 no longer pulls it in)
    ],
    extras_require={
        # jax: the JAX-backend runs of the backend-agnostic tests and the 2-process training
        # test (Keras' numpy backend imports jax too); the tested range.
        "test": ["pytest>=7", "jax>=0.10,<0.11"],
    },
)
