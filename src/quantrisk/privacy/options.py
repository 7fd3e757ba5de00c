"""The privacy study's knobs, shared by the study, its attack-input providers and the cells."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "zlib", "lowercase", "mink", "minkpp", "reference", "recall")


@dataclass
class PrivacyOptions:
    """Knobs of the privacy study (defaults follow the seed study where it says)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    batch_size: int = 64
    batch_tokens: int = 8192
    compile: bool = False  # CUDA: torch.compile the model body and the fused head statistics
    max_length: int | None = None
    stride: int | None = None
    n_resamples: int = 1000
    seed: int = 0
    completion_n: int = 100
    completion_share: float = 0.5
    max_new_tokens: int = 128
    completion_batch_size: int = 16
    prefix_n: int = 3  # ReCaLL: how many known non-member texts form the prefix
    progress: bool = False

    def scoring_key(self) -> tuple[object, ...]:
        """The options that change a token log-prob (batching can change the last bits, so it is included)."""
        return (self.batch_size, self.batch_tokens, self.max_length, self.stride, self.compile, self.prefix_n)
