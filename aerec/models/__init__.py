"""Models on dense indices: Keras autoencoders and the closed-form EASE. No user ids here."""
from .ease import ease_weights

__all__ = ["ease_weights"]
