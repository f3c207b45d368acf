"""`shapes`: the embedded captioning dataset, generated from a seed and never downloaded.

Lesson 00 introduces it. Each 224x224 RGB scene holds 1-3 objects (4 shapes, 5 colours,
2 sizes) on a tinted, noisy background, and comes with 5 different captions from a small
grammar with synonyms, spatial relations and counting:

    "a small red circle above a blue square"   "a blue box below a little red circle"
    "two green triangles"                      "there are two green triangles on the left"

Words depend on where things are (above/left of, top/bottom), so a captioner has to look at
the right regions: that is what soft attention (lesson 04) learns. Every object keeps its
bounding box, and every caption keeps, for each word, the objects it names (`refs`), so
lessons can measure attention mass on the object being named.

Only scene descriptions are stored (a JSON file of a few MB under data/); pixels are rendered
on demand, deterministically, in about a millisecond per image.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .utils import atomic_write

__all__ = ["ShapesConfig", "ShapeObject", "Scene", "generate_scene", "render", "generate_split", "load_shapes"]

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215),
           "yellow": (230, 195, 30), "purple": (135, 55, 175)}
SIZES = {"small": 34, "large": 64}  # side of the bounding box in pixels (before jitter)

# Synonyms: every caption picks one, so the five references differ.
SHAPE_WORDS = {"circle": ["circle", "ball"], "square": ["square", "box"],
               "triangle": ["triangle"], "diamond": ["diamond"]}
PLURAL = {"circle": "circles", "ball": "balls", "square": "squares", "box": "boxes",
          "triangle": "triangles", "diamond": "diamonds"}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
NUMBERS = {2: "two", 3: "three"}
RELATIONS = {"above": ["above", "over"], "below": ["below", "under", "beneath"],
             "left": ["to the left of", "left of"], "right": ["to the right of", "right of"]}
INVERSE = {"above": "below", "below": "above", "left": "right", "right": "left"}


@dataclass
class ShapesConfig:
    seed: int = 0            # everything below follows from it
    n_train: int = 4000      # images per split; each image has 5 captions
    n_val: int = 500
    n_test: int = 500
    image_size: int = 224    # square, pixels
    max_objects: int = 3
    version: int = 1         # bump when the generator changes, so caches are rebuilt


@dataclass
class ShapeObject:
    shape: str
    colour: str
    size: str
    box: tuple  # (x0, y0, x1, y1) in pixels, inclusive-exclusive


@dataclass
class Scene:
    objects: list
    background: tuple        # RGB base tint
    gradient: tuple          # RGB change from top to bottom
    noise_seed: int
    captions: list = field(default_factory=list)
    refs: list = field(default_factory=list)  # refs[c][t] = object indices named by word t of caption c


# ---------------------------------------------------------------- scene layout

def _place(rng: random.Random, n: int, canvas: int, sizes: list[int]) -> list[tuple]:
    """Non-overlapping boxes (with a margin) for n objects, by rejection sampling."""
    for _ in range(1000):
        boxes = []
        for s in sizes:
            x0, y0 = rng.randint(8, canvas - s - 8), rng.randint(8, canvas - s - 8)
            boxes.append((x0, y0, x0 + s, y0 + s))
        if all(_apart(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            return boxes
    raise RuntimeError("could not place objects without overlap; lower max_objects or sizes")


def _apart(a: tuple, b: tuple, gap: int = 10) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _centre(box: tuple) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _relation(a: ShapeObject, b: ShapeObject) -> str:
    """Where a is with respect to b, along the axis where they differ most."""
    (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
    if abs(ay - by) >= abs(ax - bx):
        return "above" if ay < by else "below"
    return "left" if ax < bx else "right"


def _region(objs: list[ShapeObject], canvas: int) -> str | None:
    """'on the left', 'at the top', ... for a group of objects, or None when central/mixed."""
    xs = [_centre(o.box)[0] / canvas for o in objs]
    ys = [_centre(o.box)[1] / canvas for o in objs]
    if max(xs) < 0.4:
        return "on the left"
    if min(xs) > 0.6:
        return "on the right"
    if max(ys) < 0.4:
        return "at the top"
    if min(ys) > 0.6:
        return "at the bottom"
    return None


# ---------------------------------------------------------------- captions

def _np(rng: random.Random, objs: list[ShapeObject], ids: list[int], article: str = "a") -> list:
    """A noun phrase for a group of identical-looking objects, as (word, ids) pairs."""
    o = objs[0]
    shape = rng.choice(SHAPE_WORDS[o.shape])
    same_size = all(x.size == o.size for x in objs)
    words = []
    if len(objs) == 1:
        words.append(article)
    else:
        words.append(NUMBERS[len(objs)])
    if same_size and rng.random() < 0.75:
        words.append(rng.choice(SIZE_WORDS[o.size]))
    words.append(o.colour)
    words.append(shape if len(objs) == 1 else PLURAL[shape])
    return [(w, ids if w != article else []) for w in words]


def _plain(words: str) -> list:
    return [(w, []) for w in words.split()]


def _caption(rng: random.Random, scene: Scene, canvas: int) -> list:
    """One caption as a list of (word, object ids) pairs."""
    objs = scene.objects
    groups: dict = {}
    for i, o in enumerate(objs):
        groups.setdefault((o.colour, o.shape), []).append(i)
    groups = list(groups.values())
    rng.shuffle(groups)
    phrases = [_np(rng, [objs[i] for i in g], g) for g in groups]

    if len(groups) == 1:  # one object, or several identical ones: name them, maybe say where
        ids = groups[0]
        if len(ids) == 2 and rng.random() < 0.3:  # "a red circle above another red circle"
            a, b = ids if rng.random() < 0.5 else ids[::-1]
            first = _np(rng, [objs[a]], [a])
            rel = rng.choice(RELATIONS[_relation(objs[a], objs[b])])
            second = [("another", [])] + [(w, [b]) for w, _ in first[1:]]
            return first + _plain(rel) + second
        lead = rng.choice(["", "there is" if len(ids) == 1 else "there are"])
        region = _region([objs[i] for i in ids], canvas)
        tail = _plain(region) if region and rng.random() < 0.6 else []
        return _plain(lead) + phrases[0] + tail

    if len(groups) == 2 and rng.random() < 0.7:  # "A above B" / "B below A" / "A next to B"
        a, b = phrases
        ga, gb = groups
        if len(ga) == 1 and len(gb) == 1:
            rel = _relation(objs[ga[0]], objs[gb[0]])
            return a + _plain(rng.choice(RELATIONS[rel])) + b
        return a + _plain(rng.choice(["next to", "and"])) + b

    # a list: "A , B and C" / "A and B" / "A with B"
    out = _plain(rng.choice(["", "there is"])) if len(groups[0]) == 1 else []
    for k, p in enumerate(phrases):
        if k == len(phrases) - 1:
            out += _plain(rng.choice(["and", "with"]) if len(phrases) == 2 else "and")
        elif k > 0:
            out += _plain(",")
        out += p
    return out


def generate_scene(rng: random.Random, config: ShapesConfig) -> Scene:
    """Random objects, a background, and 5 different captions (fewer only if the grammar runs out)."""
    canvas = config.image_size
    n = rng.choices(range(1, config.max_objects + 1), weights=[3, 4, 3][: config.max_objects])[0]
    if n >= 2 and rng.random() < 0.35:  # a counting scene: several identical shapes
        proto = (rng.choice(SHAPES), rng.choice(list(COLOURS)))
        kinds = [proto] * n if rng.random() < 0.5 or n == 2 else [proto, proto, (rng.choice(SHAPES), rng.choice(list(COLOURS)))]
    else:
        kinds = [(rng.choice(SHAPES), rng.choice(list(COLOURS))) for _ in range(n)]
    sizes = [rng.choice(list(SIZES)) for _ in range(n)]
    if len(set(kinds)) == 1 and n > 1:
        sizes = [sizes[0]] * n  # identical objects share a size, so "two small ..." is true
    px = [SIZES[s] + rng.randint(-4, 4) for s in sizes]
    boxes = _place(rng, n, canvas, px)
    objects = [ShapeObject(k[0], k[1], s, b) for k, s, b in zip(kinds, sizes, boxes)]
    background = tuple(rng.randint(170, 245) for _ in range(3))
    gradient = tuple(rng.randint(-40, 40) for _ in range(3))
    scene = Scene(objects, background, gradient, rng.randrange(2**31))

    seen = set()
    for _ in range(60):
        pairs = _caption(rng, scene, canvas)
        words = [w for w, _ in pairs if w != ","]
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            scene.captions.append(text)
            scene.refs.append([ids for w, ids in pairs if w != ","])
        if len(scene.captions) == 5:
            break
    return scene


# ---------------------------------------------------------------- pixels

def render(scene: Scene, size: int = 224) -> Image.Image:
    """The scene as a (size x size) RGB PIL image; the same scene always gives the same pixels."""
    rng = np.random.default_rng(scene.noise_seed)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)[:, None, None]  # (S, 1, 1) top to bottom
    bg = np.asarray(scene.background, np.float32) + ramp * np.asarray(scene.gradient, np.float32)  # (S, 1, 3)
    img = Image.fromarray(np.broadcast_to(bg, (size, size, 3)).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        jitter = rng.integers(-20, 21, 3)
        fill = tuple(int(c) for c in np.clip(np.asarray(COLOURS[o.colour]) + jitter, 0, 255))
        x0, y0, x1, y1 = o.box
        if o.shape == "circle":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
        elif o.shape == "square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
        elif o.shape == "triangle":
            draw.polygon([((x0 + x1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
        else:  # diamond
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=fill)
    pixels = np.asarray(img, np.float32) + rng.normal(0, 10, (size, size, 3)).astype(np.float32)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


# ---------------------------------------------------------------- splits and the cache

SPLITS = ("train", "val", "test")


def generate_split(config: ShapesConfig, split: str) -> list[Scene]:
    """All scenes of one split; scene i depends only on (seed, split, i)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    n = {"train": config.n_train, "val": config.n_val, "test": config.n_test}[split]
    return [generate_scene(random.Random(f"shapes-{config.seed}-{split}-{i}"), config) for i in range(n)]


def _scene_from_dict(d: dict) -> Scene:
    objs = [ShapeObject(o["shape"], o["colour"], o["size"], tuple(o["box"])) for o in d["objects"]]
    return Scene(objs, tuple(d["background"]), tuple(d["gradient"]), d["noise_seed"], d["captions"], d["refs"])


def load_shapes(config: ShapesConfig, root: Path) -> dict[str, list[Scene]]:
    """All three splits, generated once and cached as JSON in `root` (a few seconds the first time)."""
    c = config
    path = Path(root) / f"shapes-v{c.version}-seed{c.seed}-{c.n_train}-{c.n_val}-{c.n_test}-{c.image_size}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return {s: [_scene_from_dict(d) for d in data[s]] for s in SPLITS}
    splits = {s: generate_split(config, s) for s in SPLITS}
    text = json.dumps({s: [asdict(x) for x in v] for s, v in splits.items()})
    atomic_write(path, lambda f: f.write(text.encode()))  # an interrupted run never leaves half a file
    return splits
