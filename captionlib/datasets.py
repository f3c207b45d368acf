"""Real datasets: Flickr8k, Flickr30k and MS-COCO, in the formats they are distributed in.

Lesson 09 uses it; `captionlib prepare` checks a folder with it. Each loader returns the same
`CaptionSplit` as the embedded `shapes` dataset, so features, training and evaluation do not care
where the images came from. Supported caption files, looked for in this order:

* Andrej Karpathy's split files `dataset_flickr8k.json`, `dataset_flickr30k.json`, `dataset_coco.json`
  (the splits every captioning paper reports on; COCO's "restval" images are used for training);
* Flickr8k's own `Flickr8k.token.txt` with `Flickr_8k.{train,dev,test}Images.txt`;
* Kaggle's Flickr8k `captions.txt` (a CSV `image,caption`, no split): a deterministic split, the
  image names sorted, then shuffled with a fixed seed, 6000/1000/1000 (75/12.5/12.5 % of other sizes);
* Flickr8K-CN (Li et al., ICMR 2016): `flickr8kzhc.caption.txt`, Chinese captions written by native speakers,
  lines `NAME.jpg#zhc#K SENTENCE` (a space, not a tab), with `flickr8k{train,val,test}.txt` (Flickr8k's official
  split) and, for test, `flickr8kzhmtest.captions.txt` (human translations of the English captions:
  `references="translated"`). The photos are Flickr8k's: `images=` names their folder.

Where to get each, and the folder layout: data/<name>/README.md.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from .split import CaptionSplit
from .images import ImageLoadError, load_image
from .vocab import tokenize

__all__ = ["DatasetError", "Layout", "find_layout", "check_folder", "load_real", "SPLIT_SEED"]

SPLIT_SEED = 8000                       # the deterministic split of captions.txt
IMAGE_DIRS = {"flickr8k": ["Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "images"],
              # Flickr8K-CN ships captions only: the photos are Flickr8k's, by default those of a flickr8k folder beside it
              "flickr8k-cn": ["Images", "../flickr8k/Images", "../flickr8k/Flicker8k_Dataset", "../flickr8k/Flickr8k_Dataset"],
              "flickr30k": ["flickr30k-images", "images", "Images"],
              "coco": ["."]}            # COCO: dataset_coco.json names train2014/ or val2014/ per image
SPLITS = ("train", "val", "test")


class DatasetError(FileNotFoundError):
    """A dataset folder that cannot be used; the message lists everything that is missing."""


@dataclass
class Layout:
    name: str
    folder: Path
    format: str                         # "karpathy", "flickr8k-token" or "kaggle-captions"
    caption_file: Path
    image_dir: Path
    notes: list = field(default_factory=list)   # what was skipped and why, for `prepare` to print


def _readme(name: str) -> str:
    return f"see data/{name}/README.md for where to get it and the layout expected"


def _image_dir(name: str, folder: Path) -> Path | None:
    for d in IMAGE_DIRS[name]:
        if (folder / d).is_dir():
            return folder / d
    return None


def find_layout(name: str, folder: str | Path, images: str | Path | None = None) -> tuple[Layout | None, list[str]]:
    """Which caption format the folder has, and what is missing (empty when usable). images: the photos' folder,
    when it is not one of IMAGE_DIRS[name] (Flickr8K-CN's photos are in the English Flickr8k folder)."""
    if name not in IMAGE_DIRS:
        raise ValueError(f"unknown real dataset {name!r}; known: {sorted(IMAGE_DIRS)}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None, [f"the folder {folder} does not exist"]
    problems = []
    if images is not None:
        image_dir = Path(images).expanduser()
        if not image_dir.is_dir():
            problems.append(f"the image folder {image_dir} (--images) does not exist")
            image_dir = None
    else:
        image_dir = _image_dir(name, folder)
        if image_dir is None:
            problems.append(f"no image folder: expected one of {', '.join(d + '/' for d in IMAGE_DIRS[name])} in {folder}"
                            + (" (Flickr8K-CN has captions only: name Flickr8k's photos with --images PATH/Images)"
                               if name == "flickr8k-cn" else ""))
    karpathy = folder / f"dataset_{name}.json"
    token, kaggle = folder / "Flickr8k.token.txt", folder / "captions.txt"
    zhc = folder / "flickr8kzhc.caption.txt"
    if name == "flickr8k-cn":
        if not zhc.exists():
            problems.append(f"no caption file: expected {zhc.name} (Flickr8K-CN's native-speaker captions) in {folder}")
            return None, problems
        for s in ("train", "val", "test"):
            if not (folder / f"flickr8k{s}.txt").exists():
                problems.append(f"no split file flickr8k{s}.txt next to {zhc.name}")
        return Layout(name, folder, "flickr8k-cn", zhc, image_dir or folder), problems
    if karpathy.exists():
        fmt, captions = "karpathy", karpathy
    elif name == "flickr8k" and token.exists():
        fmt, captions = "flickr8k-token", token
        for s in ("train", "dev", "test"):
            if not (folder / f"Flickr_8k.{s}Images.txt").exists():
                problems.append(f"no split file Flickr_8k.{s}Images.txt next to Flickr8k.token.txt")
    elif name == "flickr8k" and kaggle.exists():
        fmt, captions = "kaggle-captions", kaggle
    else:
        wanted = [karpathy.name] + (["Flickr8k.token.txt (+ split lists)", "captions.txt"] if name == "flickr8k" else [])
        problems.append(f"no caption file: expected {' or '.join(wanted)} in {folder}")
        return None, problems
    return Layout(name, folder, fmt, captions, image_dir or folder), problems


def _text(layout: Layout, path: Path) -> str:
    """A caption or split file's text: UTF-8 (a byte-order mark, as Windows tools write, is dropped), else
    Latin-1/cp1252 with a note, so an old export is read rather than refused."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        layout.notes.append(f"{path.name} is not UTF-8 (line {line} is the first that is not): read it as Windows-1252/Latin-1")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _malformed(path: Path, bad: list, expected: str) -> DatasetError:
    shown = "\n".join(f"  {path}, line {n}: {text[:60]!r}" for n, text in bad[:5])
    more = f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else ""
    return DatasetError(f"{path}: {len(bad)} line(s) are not {expected}:\n{shown}{more}")


def _karpathy(layout: Layout) -> dict:
    path = layout.caption_file
    try:
        data = json.loads(_text(layout, path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); {_readme(layout.name)}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if isinstance(images, dict):                     # some exports key the images by id
        images = list(images.values())
    if not isinstance(images, list):
        raise DatasetError(f"{path}: not a Karpathy split file (no list of 'images'); {_readme(layout.name)}")
    out, problems = {s: [] for s in SPLITS}, []
    for k, im in enumerate(images):
        if not isinstance(im, dict) or not im.get("filename"):
            problems.append((k, f"image entry {k} has no 'filename': {str(im)[:50]}"))
            continue
        split = "train" if im.get("split") == "restval" else im.get("split")
        if split not in out:
            continue
        rel = Path(im.get("filepath") or "") / im["filename"]
        sentences = [x for x in (im.get("sentences") or []) if isinstance(x, dict)]      # null or missing: no captions
        caps = [" ".join(x["tokens"]) if x.get("tokens") else str(x.get("raw") or "") for x in sentences]
        out[split].append((str(rel), caps))
    if problems:
        raise DatasetError(f"{path}: {len(problems)} image entries are unusable:\n"
                           + "\n".join(f"  {m}" for _, m in problems[:5]) + ("\n  ..." if len(problems) > 5 else ""))
    return out


def _flickr8k_token(layout: Layout) -> dict:
    captions: dict[str, list] = {}
    bad = []
    for n, line in enumerate(_text(layout, layout.caption_file).splitlines(), 1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        if not sep or "#" not in key:
            bad.append((n, line))
            continue
        captions.setdefault(key.rsplit("#", 1)[0], []).append(caption)
    if bad:
        raise _malformed(layout.caption_file, bad, "'IMAGE.jpg#k<TAB>caption'")
    out = {}
    for split, name in zip(SPLITS, ("train", "dev", "test")):
        lines = _text(layout, layout.folder / f"Flickr_8k.{name}Images.txt").split()
        out[split] = [(f, captions.get(f, [])) for f in lines]
    listed = {f for items in out.values() for f, _ in items}
    unlisted = sorted(set(captions) - listed)
    phantom = [f for f in unlisted if not (layout.image_dir / f).exists()]
    if phantom:   # Flickr8k's own file has one: 2258277193_586949ec62.jpg.1
        layout.notes.append(f"skipped {len(phantom)} name(s) in {layout.caption_file.name} with no image file and in no "
                            f"split list: {', '.join(phantom[:3])} ({sum(len(captions[f]) for f in phantom)} captions)")
    if len(unlisted) > len(phantom):
        layout.notes.append(f"{len(unlisted) - len(phantom)} image(s) with captions are in no split list and are not used")
    return out


def _kaggle(layout: Layout) -> dict:
    captions: dict[str, list] = {}
    reader = csv.reader(io.StringIO(_text(layout, layout.caption_file), newline=""))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
        raise DatasetError(f"{layout.caption_file}, line 1: expected a CSV with the header 'image,caption', got {header}")
    bad = []
    for row in reader:
        if len(row) >= 2 and row[0].strip():
            captions.setdefault(row[0].strip(), []).append(",".join(row[1:]))
        elif any(cell.strip() for cell in row):
            bad.append((reader.line_num, ",".join(row)))
    if bad:
        raise _malformed(layout.caption_file, bad, "'image,caption' rows")
    names = sorted(captions)
    random.Random(SPLIT_SEED).shuffle(names)
    n = len(names)
    n_val = n_test = 1000 if n == 8000 else max(1, round(n / 8))
    cut = {"train": names[: n - n_val - n_test], "val": names[n - n_val - n_test: n - n_test], "test": names[n - n_test:]}
    return {s: [(f, captions[f]) for f in cut[s]] for s in SPLITS}


def _flickr8k_cn_lines(layout: Layout, path: Path, tag: str) -> dict:
    """{image name: [captions]} from lines 'NAME.jpg#zhc#K SENTENCE' (tag "zhc"; "zhm" for the translations)."""
    captions: dict[str, list] = {}
    bad = []
    for n, line in enumerate(_text(layout, path).splitlines(), 1):
        if not line.strip():
            continue
        key, sep, caption = line.partition(" ")
        name, _, k = key.partition(f"#{tag}#")
        if not sep or not k or not name:
            bad.append((n, line))
            continue
        captions.setdefault(name, []).append(caption.strip())
    if bad:
        raise _malformed(path, bad, f"'IMAGE.jpg#{tag}#k SENTENCE' (one space after the key)")
    return captions


def _flickr8k_cn(layout: Layout, references: str = "native") -> dict:
    captions = _flickr8k_cn_lines(layout, layout.caption_file, "zhc")
    out = {}
    for split in SPLITS:
        names = [f if f.endswith(".jpg") else f + ".jpg" for f in _text(layout, layout.folder / f"flickr8k{split}.txt").split()]
        out[split] = [(f, captions.get(f, [])) for f in names]
    if references == "translated":                  # the test photos' human translations of the English captions
        path = layout.folder / "flickr8kzhmtest.captions.txt"
        if not path.exists():
            raise DatasetError(f"no {path.name} in {layout.folder}: the translated references are not there")
        translated = _flickr8k_cn_lines(layout, path, "zhm")
        out = {"test": [(f, translated.get(f, [])) for f, _ in out["test"]], "train": [], "val": []}
    return out


READERS = {"karpathy": _karpathy, "flickr8k-token": _flickr8k_token, "kaggle-captions": _kaggle, "flickr8k-cn": _flickr8k_cn}
REFERENCES = ("native", "translated")      # Flickr8K-CN's test references: written by native speakers, or translated


_SCANNED: dict = {}   # (name, folder, caption file mtime and size) -> a successful _scan, reused in this process


def _scan(name: str, folder: str | Path, images: str | Path | None = None, references: str = "native") -> tuple[Layout, dict]:
    """Read the caption file once and stat every image once.

    Returns the layout and {split: (items, signatures)}, items [(file, captions)] and signatures the image
    files' `_signature`s (size and sampled bytes, for the fingerprint); raises a DatasetError listing everything that is missing.
    A successful scan is reused while the caption file is unchanged (prepare loads three splits).
    """
    if references not in REFERENCES or (references != "native" and name != "flickr8k-cn"):
        raise ValueError(f"references={references!r}: only flickr8k-cn has translated references; "
                         f"choose from {', '.join(REFERENCES)}")
    layout, problems = find_layout(name, folder, images)
    key = None
    if layout is not None and not problems:
        stat = layout.caption_file.stat()
        key = (name, str(layout.folder.resolve()), str(layout.image_dir.resolve()), references, stat.st_mtime_ns, stat.st_size)
        if key in _SCANNED:
            return _SCANNED[key]
        splits = {}
        read = READERS[layout.format]
        found = read(layout, references) if layout.format == "flickr8k-cn" else read(layout)
        for split, items in found.items():
            if references != "native" and split != "test":
                splits[split] = ([], [])
                continue
            signatures, missing, odd = [], [], []
            for f, _ in items:
                try:
                    signatures.append(_signature(layout.image_dir / f))
                except FileNotFoundError:
                    missing.append(f)
                except OSError as e:                 # a folder (or a file this user may not read) where an image should be
                    signatures.append(f"unreadable-{type(e).__name__}")
                    odd.append((f, "a folder" if isinstance(e, IsADirectoryError) else e.strerror or type(e).__name__))
            if odd:                                  # listed like other unreadable images: skipped when features are made
                layout.notes.append(f"warning: {len(odd)} {split} image(s) cannot be read and will be skipped: "
                                    + ", ".join(f"{f} ({why})" for f, why in odd[:3]) + (" ..." if len(odd) > 3 else ""))
            if not items:
                problems.append(f"the {split} split is empty in {layout.caption_file.name}")
            if missing:
                problems.append(f"{len(missing)} of {len(items)} {split} images are missing from {layout.image_dir}, "
                                f"e.g. {', '.join(missing[:3])}")
            no_caps = [f for f, caps in items if not any(tokenize(c) for c in caps)]
            if no_caps:
                problems.append(f"{len(no_caps)} {split} images have no caption, e.g. {', '.join(no_caps[:3])}")
            splits[split] = (items, signatures)
        layout.notes += _duplicates(splits)
    if problems:
        raise DatasetError(f"{name} in {Path(folder)} cannot be used:\n  - " + "\n  - ".join(problems)
                           + f"\n{_readme(name)}")
    _SCANNED[key] = (layout, splits)
    return layout, splits


def _signature(path: Path, span: int = 4096) -> str:
    """A file's size and a digest of its first and last 4 KiB: an image replaced by another of the same size
    changes it (the cached features must not outlive their image), and 8,000 files are read in a second."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(span)
        f.seek(max(size - span, len(head)))
        tail = f.read(span)
    return f"{size}-{hashlib.blake2b(head + tail, digest_size=8).hexdigest()}"


def _duplicates(splits: dict) -> list[str]:
    """Warnings for images listed twice, the same caption twice for one image, and images in two splits
    (a test image seen in training makes the test scores too good)."""
    notes, seen = [], {}
    for split, (items, _) in splits.items():
        names = [f for f, _ in items]
        twice = sorted(f for f, k in collections.Counter(names).items() if k > 1)    # linear: COCO has 113k names
        if twice:
            notes.append(f"warning: {len(twice)} {split} image(s) are listed more than once, e.g. {', '.join(twice[:3])}")
        repeated = [f for f, caps in items if len(set(caps)) < len(caps)]
        if repeated:
            notes.append(f"warning: {len(repeated)} {split} image(s) have the same caption twice, e.g. {', '.join(repeated[:3])}")
        for other, names_other in seen.items():
            shared = sorted(set(names) & names_other)
            if shared:
                notes.append(f"warning: {len(shared)} image(s) are in both {other} and {split}, e.g. {', '.join(shared[:3])}: "
                             "scores on the later split are then not a fair test")
        seen[split] = set(names)
    return notes


def check_folder(name: str, folder: str | Path, images: str | Path | None = None) -> Layout:
    """The folder's layout, or a DatasetError listing everything that is missing."""
    return _scan(name, folder, images)[0]


class _Files:
    """Image files as a lazy sequence of PIL RGB images."""

    def __init__(self, paths: list):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        if not path.exists():   # it was there when the folder was checked
            raise ImageLoadError(f"{path}: no such file any more; `captionlib prepare` lists what is missing from the dataset")
        return load_image(path)


def load_real(name: str, split: str, root: Path, folder: str | Path | None = None, images: str | Path | None = None,
              references: str = "native") -> CaptionSplit:
    """One split of a real dataset from `folder` (default: <data root>/<name>); images: the photos' folder when it
    is not inside `folder`; references: "translated" for Flickr8K-CN's translated test references."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if references != "native" and split != "test":
        raise ValueError(f"references={references!r} exist for the test split only")
    layout, splits = _scan(name, Path(folder) if folder is not None else root / name, images, references)
    items, signatures = splits[split]
    # the fingerprint changes when the file list, a file's size or bytes (`_signature`) or the caption source changes
    h = hashlib.sha1(f"{name}|{split}|{layout.format}".encode())
    for (f, _), signature in zip(items, signatures):
        h.update(f"{f}:{signature};".encode())
    return CaptionSplit(name, split, [f for f, _ in items], [caps for _, caps in items],
                        _Files([layout.image_dir / f for f, _ in items]), h.hexdigest())
