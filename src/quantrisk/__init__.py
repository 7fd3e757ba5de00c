"""quantrisk: what quantization does to a code LM's quality, privacy leakage and trojans."""

__version__ = "0.1.0"

# Optional quantization libraries (torchao, pulled in by transformers whenever it is installed) log at import
# time that their C extensions were built for another torch, and torch notes their Enum registrations: noise on
# every command's stderr. quantrisk's own messages are one line each, so these two loggers only speak on errors.
import logging as _logging  # noqa: E402

for _name in ("torchao", "torch.utils._pytree", "kernels"):  # kernels: "skipping publisher trust check" offline
    _logging.getLogger(_name).setLevel(_logging.ERROR)

from quantrisk.network import no_network_by_default as _no_network  # noqa: E402

_no_network()
