"""The privacy study's options, defined once (`PrivacySettings`: default, bound, help text of each): the spec's
`studies.privacy` (`spec_studies.PrivacyStudy`), the `quantrisk privacy` options and the privacy cells' parameters
derive from it. `PrivacyOptions` adds what a run supplies (its seed, progress bars) and is what the study reads.
Defaults follow the seed study (N = 1000 + 1000, 100 completions of at most 128 tokens, every default attack)."""

from __future__ import annotations

from pydantic import field_validator

from quantrisk.options import StudyOptions, option

DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "zlib", "lowercase", "mink", "minkpp", "reference", "recall")


class PrivacySettings(StudyOptions):
    """Options of the privacy study (one field each, with its default, bound and help text)."""

    n: int | None = option(1000, "Members and non-members each (N + N); null (CLI: 'all'): all.", ge=1, cli_text=True)
    attacks: tuple[str, ...] = option(DEFAULT_ATTACKS, "Attacks, comma-separated on the CLI (mink-0.1 sets k).",
                                      cli_text=True, validate_default=True)
    completion_n: int = option(100, "Non-member functions to complete for CodeBLEU (0: skip).", ge=0)
    completion_share: float = option(0.5, "Share of a function's body lines given as the completion prompt.", gt=0,
                                     lt=1, omit_default=True)
    max_new_tokens: int = option(128, "Cap on the tokens generated per completion.", ge=1)
    completion_batch_size: int = option(16, "Prompts per generate call of the completions.", ge=1, omit_default=True)
    prefix_n: int = option(3, "ReCaLL: known non-member texts joined into the prefix.", ge=1, omit_default=True)
    batch_size: int = option(64, "Most sequences in one scoring batch.", ge=1)
    batch_tokens: int = option(8192, "Token budget (rows x longest row) of one scoring batch.", ge=1)
    max_length: int | None = option(None, "Truncate/slide beyond this many tokens (default: model context).", ge=2)
    stride: int | None = option(None, "Sliding-window stride for texts past max_length (default: truncate).", ge=1)
    compile: bool = option(False, "CUDA: torch.compile the model for scoring.", cli="--compile")
    n_resamples: int = option(1000, "Bootstrap resamples for the AUC CIs.", ge=1, cli="--resamples")

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_list(cls, v: object) -> object:
        return tuple(v) if isinstance(v, list) else v


class PrivacyOptions(PrivacySettings):
    """What the privacy study reads: its options plus the run's seed and whether to show progress bars."""

    seed: int = 0
    progress: bool = False

    def scoring_key(self) -> tuple[object, ...]:
        """The options that change a token log-prob (batching can change the last bits, so it is included)."""
        return (self.batch_size, self.batch_tokens, self.max_length, self.stride, self.compile, self.prefix_n)
