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
        "scipy>=1.10",  # connected components for the reference-compatible box extraction
        "numba>=0.59",  # the nested-threshold box search (see keras_dgdm/localization.py)
        "matplotlib>=3.7",  # figures (keras_dgdm/viz.py)
        "pillow>=10",  # image decoding checks in the raw-folder loaders
        "tensorflow-datasets>=4.9",  # CUB-200-2011 and Stanford Cars through tfds
        "tensorboard>=2.16",  # the run directory's logs/ (TensorFlow 2.21 no longer pulls it in)
    ],
    extras_require={
        # opencv: the reference evaluator (cv2 contours) that tests and benchmarks compare against.
        "test": ["pytest>=7", "opencv-python-headless>=4.8"],
    },
)
