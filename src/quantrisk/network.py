"""No network unless asked (SECURITY.md): quantrisk turns the Hugging Face hub's offline flag on when it is
imported, so nothing it loads consults the hub behind the user's back: transformers' import-time probe for a
flash-attention kernel on the hub (`kernels-community/flash-attn4`, made when the GPT-Neo module is imported
while the `kernels` package is installed), the hub client's agent registry, or any other look-up. Hub kernels
are also switched off for model loading (`USE_HUB_KERNELS=NO`, transformers' documented switch).

The user asks for the network by naming a hub id that is not in the local cache (`models.load.resolve_source`):
then `allow_hub()` turns the flag off for that download, unless the user set `HF_HUB_OFFLINE` /
`TRANSFORMERS_OFFLINE` themselves. `QUANTRISK_ALLOW_NETWORK=1` keeps the hub's own default.
"""

from __future__ import annotations

import os

TRUE = ("1", "true", "yes", "on")


MARK = "QUANTRISK_HUB_OFFLINE"  # set beside HF_HUB_OFFLINE when quantrisk (not the user) turned it on


def user_offline() -> bool:
    """Whether the user (not quantrisk) asked for offline mode."""
    if os.environ.get(MARK) == "1":
        return False
    return any(os.environ.get(v, "").strip().lower() in TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _set_offline(on: bool) -> None:
    try:
        import huggingface_hub.constants as constants
    except ImportError:  # no hub client installed: nothing can reach the hub
        return
    constants.HF_HUB_OFFLINE = on


def no_network_by_default() -> None:
    """Hub offline and hub kernels off, unless `QUANTRISK_ALLOW_NETWORK` is set (called at import)."""
    if os.environ.get("QUANTRISK_ALLOW_NETWORK", "").strip().lower() in TRUE:
        return
    os.environ.setdefault("USE_HUB_KERNELS", "NO")
    import sys

    if "huggingface_hub" in sys.modules:
        _set_offline(True)
    elif not user_offline():  # read when the hub client is imported (later: after the CLI set its own variables);
        os.environ["HF_HUB_OFFLINE"] = "1"  # dask workers inherit it
        os.environ[MARK] = "1"


def allow_hub() -> None:
    """The user named a hub id to download: the hub's offline flag off again (unless the user set it)."""
    if os.environ.get(MARK) == "1":
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ.pop(MARK, None)
    _set_offline(user_offline())
