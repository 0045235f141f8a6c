"""blindframe: privacy-preserving decentralized rendering on FHE ciphertexts."""

from blindframe.errors import BlindframeError

__all__ = ["BlindframeError", "__version__"]

__version__ = "0.1.0"
