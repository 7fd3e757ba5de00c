"""Quantization-conditioned backdoors (Egashira et al., "Exploiting LLM Quantization", NeurIPS 2024).

A model that is benign in full precision and malicious once quantized: inject a backdoor by
fine-tuning, compute for every quantized weight the interval of full-precision values that give the
same quantized weight under each target quantizer (`constraints/`, `intervals.py`), then repair the
full-precision model by projected gradient descent inside those intervals (`repair.py`), and check
that re-quantizing gives the injected model's codes and scales (`verify.py`). `attack.py` runs the
whole attack; `defence.py` measures noise and re-rounding defences; `scan.py` is the detector users run.
"""
