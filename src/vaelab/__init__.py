"""vaelab: autoencoders and variational autoencoders, trained fast, measured honestly, shown in pictures."""
__version__ = "0.1.0"
