"""keras-dgdm: weakly supervised object localization with the Dual-attention Guided Dropblock Module.

    from keras_dgdm import DGDM
"""
__version__ = "0.1.0"
