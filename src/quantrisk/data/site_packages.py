"""The site-packages corpus: samples from the installed, permissively licensed distributions.

A distribution is read only if its licence metadata is permissive (`licence_of`: MIT, BSD, Apache-2.0,
PSF, ISC; copyleft or unknown is skipped and counted). Its `.py` files (test suites excluded) are parsed,
in worker processes when there are many, into function or file samples; every file read is recorded in a
manifest row (distribution, version, licence, path, sha256, size), written as `corpus_manifest.jsonl`
next to a pretrained model. `corpus_description` is the corpus as it enters a model's record.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from quantrisk.data.code_units import (
    EXCLUDED_DIRS,
    UNIT_LIMITS,
    CodeSample,
    _functions,
    _norm_dist,
    _python_files,
    canonical_corpus,
    parse_sources,
    sha256_text,
    stdlib_root,
)
from quantrisk.errors import UsageError
from quantrisk.results import atomic_write_text

# Licence families accepted from site-packages (SPDX ids, classifier and free-text spellings -> family).
PERMISSIVE: dict[str, str] = {"mit": "MIT", "bsd": "BSD", "0bsd": "BSD", "apache": "Apache-2.0", "psf": "PSF",
                              "python software foundation": "PSF", "isc": "ISC"}
_COPYLEFT = ("gpl", "mpl", "mozilla", "epl", "eclipse", "cddl", "eupl", "agpl", "lgpl", "proprietary", "commercial")


def _family(text: str) -> str | None:
    """Permissive family of one licence name (SPDX id, classifier tail or free text), else None."""
    low = text.lower().strip()
    if not low or any(word in low for word in _COPYLEFT):
        return None
    import re

    for key, fam in PERMISSIVE.items():
        if re.search(rf"(^|[^a-z0-9]){re.escape(key)}([^a-z]|$)", low):
            return fam
    return None


def licence_of(meta: object) -> tuple[str | None, str]:
    """(permissive family or None, the licence as the metadata states it) of a distribution's metadata:
    `License-Expression` (every SPDX id must be permissive), else the `License ::` classifiers (all
    permissive), else the first line of `License`."""
    import re

    get = getattr(meta, "get", lambda _k, _d=None: None)
    expr = get("License-Expression")
    if expr:
        ids = [t for t in re.split(r"[\s()]+", str(expr)) if t and t.upper() not in ("AND", "OR", "WITH")]
        fams = [_family(i) for i in ids]
        return ("+".join(sorted(set(fams))) if fams and all(fams) else None), str(expr)  # type: ignore[arg-type]
    classifiers = [c.split("::")[-1].strip() for c in (meta.get_all("Classifier") or [])  # type: ignore[attr-defined]
                   if c.startswith("License ::") and "OSI Approved" != c.split("::")[-1].strip()]
    if classifiers:
        fams = [_family(c) for c in classifiers]
        stated = "; ".join(classifiers)
        return ("+".join(sorted(set(fams))) if all(fams) else None), stated  # type: ignore[arg-type]
    text = str(get("License") or "").strip().splitlines()
    first = text[0].strip() if text else ""
    return (_family(first) if first and len(first) < 120 else None), first or "unknown"


@dataclass(frozen=True)
class ManifestRow:
    """One source file of a corpus: distribution, version, licence family, path, sha256 and size of its bytes."""

    dist: str
    version: str
    licence: str
    path: str
    sha256: str
    bytes: int = 0


POOL_MIN_FILES = 500  # parse site-packages in worker processes above this many files


def _parse_file(job: tuple[str, str]) -> tuple[str, int, list[tuple[str, str]]] | None:
    """(sha256 of the bytes, size, [(qualname or "", text)]) of one .py file (whole file for unit "file"), or
    None if it cannot be read as UTF-8."""
    path, unit = job
    try:
        raw = Path(path).read_bytes()
        source = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    items = [("", source)] if unit == "file" else list(_functions(source))
    return hashlib.sha256(raw).hexdigest(), len(raw), items


@lru_cache(maxsize=4)
def site_packages_samples(unit: str, dists: tuple[str, ...] = ()) -> tuple[tuple[CodeSample, ...], tuple[ManifestRow, ...], dict[str, int]]:
    """Samples from the `.py` files of the installed distributions (`importlib.metadata`; all, or those named in
    `dists`) whose licence metadata is permissive (MIT, BSD, Apache-2.0, PSF, ISC; see `licence_of`), test suites
    excluded. Returns (samples, manifest of the files read, skipped distributions counted by stated licence).
    Ids are `site-packages/<dist>/<relative path>[::qualname]`."""
    from importlib import metadata

    wanted = {_norm_dist(d) for d in dists}
    found: set[str] = set()
    samples: list[CodeSample] = []
    manifest: list[ManifestRow] = []
    skipped: dict[str, int] = {}
    seen_text: set[str] = set()
    ids: set[str] = set()
    seen_dist: set[str] = set()
    todo: list[tuple[str, str, str, str, str]] = []  # (dist, version, licence, relative path, absolute path)
    lo, hi = UNIT_LIMITS[unit]
    for dist in sorted(metadata.distributions(), key=lambda d: _norm_dist(d.metadata.get("Name") or "")):
        name = _norm_dist(dist.metadata.get("Name") or "")
        if not name or name in seen_dist or (wanted and name not in wanted):
            continue
        seen_dist.add(name)
        found.add(name)
        family, stated = licence_of(dist.metadata)
        if family is None:
            key = f"licence not permissive or unknown: {stated[:60]}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        for f in sorted(dist.files or [], key=str):
            parts = f.parts
            if f.suffix != ".py" or any(p in EXCLUDED_DIRS for p in parts[:-1]) or parts[-1].startswith("test_") \
                    or ".." in parts:
                continue
            todo.append((name, dist.version, family, f.as_posix(), str(dist.locate_file(f))))
    # reading and parsing (ast) the files is the slow part (70 s of CPU for 15k files): in processes when there
    # are many files and cores; the results come back in the same order, so the corpus is the same either way
    workers = min(8, (os.cpu_count() or 1) - 1)
    if len(todo) > POOL_MIN_FILES and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            parsed = list(pool.map(_parse_file, [(t[4], unit) for t in todo], chunksize=64))
    else:
        parsed = [_parse_file((t[4], unit)) for t in todo]
    for (name, version, family, rel, _), got in zip(todo, parsed, strict=True):
        if got is None:
            continue
        digest_file, size, items = got
        manifest.append(ManifestRow(name, version, family, rel, digest_file, size))
        for sid, text in ([(rel, items[0][1])] if unit == "file" else [(f"{rel}::{q}", t) for q, t in items]):
            if not (lo <= len(text) <= hi) or not text.strip():
                continue
            digest = sha256_text(text)
            if digest in seen_text:
                continue
            seen_text.add(digest)
            sid = f"site-packages/{name}/{sid}"
            base, n = sid, 2
            while sid in ids:  # one file can define the same qualname twice (e.g. under if/else)
                sid, n = f"{base}#{n}", n + 1
            ids.add(sid)
            samples.append(CodeSample(sid, f"site-packages/{name}/{rel}", text, digest))
    missing = sorted(wanted - found)
    if missing:
        raise UsageError(f"distribution(s) not installed: {', '.join(missing)}")
    return tuple(samples), tuple(manifest), skipped


def corpus_manifest(corpus: str | Path | None) -> list[ManifestRow]:
    """Manifest rows (dist, version, licence, path, sha256) of the files a built-in corpus reads ([] for a path)."""
    sources = parse_sources(corpus)
    if sources is None:
        return []
    rows: list[ManifestRow] = []
    version = sys.version.split()[0]
    for name, dists in sources:
        if name == "stdlib":
            root = stdlib_root()
            for p in _python_files(root):
                raw = p.read_bytes()
                rows.append(ManifestRow("python-stdlib", version, "PSF", p.relative_to(root).as_posix(),
                                        hashlib.sha256(raw).hexdigest(), len(raw)))
        else:
            rows += list(site_packages_samples("function", dists)[1])
    return rows


def write_manifest(path: str | Path, rows: Iterable[ManifestRow]) -> None:
    """Write the corpus manifest as JSON Lines (one file a line), atomically."""
    atomic_write_text(Path(path), "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in rows))


def corpus_description(corpus: str | Path | None) -> dict[str, object]:
    """What a corpus is, for the record: kind, root, Python version (the stdlib differs between versions); for
    site-packages also the distributions used and those skipped (by stated licence)."""
    sources = parse_sources(corpus)
    if sources is None:
        return {"kind": "path", "root": str(Path(str(corpus)).expanduser().resolve())}
    out: dict[str, object] = {"kind": canonical_corpus(str(corpus or "stdlib")), "root": str(stdlib_root()),
                              "python": sys.version.split()[0], "licence": "PSF"}
    for name, dists in sources:
        if name == "site-packages":
            samples, manifest, skipped = site_packages_samples("function", dists)
            used = sorted({(r.dist, r.version, r.licence) for r in manifest})
            out["licence"] = "PSF + " + ", ".join(sorted({r.licence for r in manifest}))
            out["site_packages"] = {"distributions": [f"{d}=={v} ({lic})" for d, v, lic in used],
                                    "skipped": skipped}
    return out
