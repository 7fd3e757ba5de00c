"""Files / MB / samples / tokens each built-in corpus source gives on this machine (README figures).

`python benchmarks/corpus_sizes.py [--vocab 16384]`: for `stdlib` and `site-packages` (permissive
distributions only), the .py files read, their MB, the function samples kept (unit `function`) with
their MB of text, and their tokens under a BPE tokenizer of `--vocab` trained on the stdlib samples
(the small/base/large vocabulary). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    from quantrisk.data.corpus import folder_samples, stdlib_root
    from quantrisk.data.site_packages import corpus_manifest, site_packages_samples
    from quantrisk.models.tokenizer import train_tokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, default=16384)
    args = p.parse_args()
    std = folder_samples(stdlib_root(), unit="function")
    sp, sp_manifest, skipped = site_packages_samples("function", ())
    tok = train_tokenizer([s.text for s in std], args.vocab)

    def tokens(texts: list[str]) -> int:
        n = 0
        for i in range(0, len(texts), 2000):
            n += sum(len(x) for x in tok(texts[i : i + 2000], add_special_tokens=False)["input_ids"])
        return n

    std_rows = corpus_manifest("stdlib")
    out = {
        "vocab": args.vocab,
        "stdlib": {"files": len(std_rows), "file_mb": sum(r.bytes for r in std_rows) / 1e6,
                   "samples": len(std), "sample_mb": sum(len(s.text.encode()) for s in std) / 1e6,
                   "tokens": tokens([s.text for s in std])},
        "site-packages": {"files": len(sp_manifest), "file_mb": sum(r.bytes for r in sp_manifest) / 1e6,
                          "distributions": len({r.dist for r in sp_manifest}),
                          "distributions_skipped": sum(skipped.values()),
                          "samples": len(sp), "sample_mb": sum(len(s.text.encode()) for s in sp) / 1e6,
                          "tokens": tokens([s.text for s in sp])},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
