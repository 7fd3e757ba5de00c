"""What a run records about where it ran: package versions, device, Python, platform."""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The core distributions; each quantization back-end adds its own library when its module is imported
# (`Quantizer.library` / `Quantizer.packages`, through `record_packages`).
PACKAGES: tuple[str, ...] = (
    "quantrisk", "torch", "transformers", "tokenizers", "peft", "accelerate",
    "codebleu", "sqlparse", "rapidfuzz", "scikit-learn", "numpy", "dask", "distributed",
)
BACKEND_PACKAGES: list[str] = []


def record_packages(*names: str) -> None:
    """Add distributions (a back-end's libraries) to those every environment record lists, once each."""
    BACKEND_PACKAGES.extend(n for n in dict.fromkeys(names) if n not in PACKAGES and n not in BACKEND_PACKAGES)


def package_version(name: str) -> str | None:
    """Installed version of distribution `name`, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe_device(device: str) -> str:
    """Human name of a torch device, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (2 threads)'."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


@functools.lru_cache(maxsize=1)
def _code_version() -> tuple[str | None, str | None, bool | None]:
    here = str(Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return package_version("quantrisk"), None, None
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return (package_version("quantrisk"), commit.stdout.strip()[:40],
                bool(dirty.stdout.strip()) if dirty.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return package_version("quantrisk"), None, None


def code_version() -> dict[str, Any]:
    """The quantrisk version and, when the package runs from a git checkout, its commit and whether the work tree
    had uncommitted changes (`git` run locally with a 5 s limit; None where there is no checkout or no git)."""
    version, commit, dirty = _code_version()
    return {"quantrisk": version, "git_commit": commit, "git_dirty": dirty}


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions of every relevant package, Python, platform, the device description and the code version."""
    return {
        "code": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "device_name": describe_device(device),
        "packages": {p: v for p in (*PACKAGES, *BACKEND_PACKAGES) if (v := package_version(p)) is not None},
        **_llama_cpp_build(),
    }


def _llama_cpp_build() -> dict[str, Any]:
    """llama.cpp's build (CPU features, back-ends) when a GGUF precision loaded it in this process."""
    if "llama_cpp" not in sys.modules:
        return {}
    llama_cpp = sys.modules["llama_cpp"]
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    return {"llama_cpp": {"llama_cpp_python": str(llama_cpp.__version__), "system_info": info}}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
