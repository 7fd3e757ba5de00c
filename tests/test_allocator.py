"""glibc allocator settings (quantrisk.allocator): set by default, left alone when asked or when the user set them."""

from __future__ import annotations

import ctypes
import platform

import pytest

from quantrisk.allocator import configure_allocator


def _glibc() -> bool:
    return platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL(None), "mallopt")


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_configure_allocator_sets_thresholds_on_glibc():
    assert configure_allocator({}) is True


def test_configure_allocator_respects_opt_out_and_user_settings():
    assert configure_allocator({"QUANTRISK_MALLOC": "default"}) is False
    assert configure_allocator({"MALLOC_TRIM_THRESHOLD_": "65536"}) is False
    assert configure_allocator({"MALLOC_MMAP_THRESHOLD_": "131072"}) is False
