"""quantrisk: what quantization does to a code LM's quality, privacy leakage and trojans."""

__version__ = "0.1.0"
