"""A learner's first hour (issue 34): the capstone's real-photo caption is the command line's, its section runs on
its own, the upload widget's picture is complete the first time, a check cell run alone after a restart explains
itself, and no cell prints an object's address."""
import contextlib
import io
import re
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest
from PIL import Image

from captionlib.__main__ import main as captionlib
from captionlib.grading import CHECK_CALL
from captionlib.images import load_image
from captionlib.train import caption_photos, load_captioner
from captionlib.utils import shipped_checkpoint

REPO = Path(__file__).resolve().parents[1]
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
CAPSTONE = REPO / "solutions" / "09_putting_it_together.ipynb"


def test_the_capstone_captions_the_photo_exactly_as_the_command_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert captionlib(["caption", str(PHOTO), "--device", "cpu"]) == 0
    cli = re.match(rf"{re.escape(str(PHOTO))}: (.*?)   \(", out.getvalue()).group(1)
    decoder, vocab, state, encoder = load_captioner(shipped_checkpoint(), "cpu")
    gamma = state["meta"]["length_norm"]
    assert gamma > 0                                          # the shipped model ranks by log p / length^γ
    ours = caption_photos(decoder, encoder, [load_image(PHOTO)], 3, length_norm=gamma)[0]
    assert vocab.text(ours.tokens) == cli
    stored = [o for c in nbformat.read(CAPSTONE, as_version=4).cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "stream" and re.match(r"\s+3\s+-?\d", o["text"])]
    assert stored and stored[0]["text"].split("  ", 2)[-1].strip().endswith(cli), (stored, cli)   # the lesson's beam-3 row


def _section(nb, start: str, end: str) -> list:
    cells = nb.cells
    first = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith(start))
    last = next(i for i, c in enumerate(cells) if i > first and c.cell_type == "markdown" and c.source.startswith(end))
    return [c for c in cells[first:last] if c.cell_type == "code"]


def test_the_real_photo_section_runs_on_its_own(tmp_path):
    """Only the parameters cell and section 5's own cells, in a fresh kernel: no name from sections 1-4 is needed."""
    from nbclient import NotebookClient

    nb = nbformat.read(CAPSTONE, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cells = params + _section(nb, "## 5. Real photos", "### The Flickr8k test split")
    alone = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells],
                                     metadata=nb.metadata)
    NotebookClient(alone, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "solutions")}}).execute()
    printed = "".join(o.get("text", "") for c in alone.cells for o in c.outputs)
    assert "standing" in printed or "man" in printed, printed[:2000]
    assert not any(o.output_type == "error" for c in alone.cells for o in c.outputs)


def test_the_upload_widgets_picture_is_complete_the_first_time():
    """An RGBA 128x128 PNG (the upload that came out with blank panels): attention_png draws the figure to the end
    before it is shown, so the first call's picture is the second's, and every word's panel holds the photo."""
    from captionlib.viz import attention_png

    rgba = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    pixels = np.zeros((128, 128, 4), np.uint8)
    pixels[32:96, 32:96] = (220, 40, 40, 255)                      # a red square on a transparent background
    rgba = Image.fromarray(pixels, "RGBA")
    photo = load_image("upload.png", data=_png(rgba))
    decoder, vocab, state, encoder = load_captioner(shipped_checkpoint(), "cpu")
    c = caption_photos(decoder, encoder, [photo], 3, length_norm=state["meta"]["length_norm"])[0]
    words = vocab.decode(c.tokens, join=False)
    first, second = (attention_png(photo, words, c.alphas.numpy()) for _ in range(2))
    assert first == second and first.startswith(b"\x89PNG")
    picture = np.asarray(Image.open(io.BytesIO(first)).convert("RGB")).astype(float)
    reddish = (picture[..., 0] > 150) & (picture[..., 1] < 120)
    panels = (len(words) + 1 + 5) // 6                           # cols=6: the photo and one panel per word
    assert reddish.sum() > 50 * (len(words) + 1), "some panels lack the photo"
    assert panels >= 1


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _check_cells():
    for path in sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
                yield path.name, cell.source


@pytest.mark.parametrize("lesson, source", list(_check_cells()), ids=[f"{l[:2]}:{CHECK_CALL.search(s).group(3)}" for l, s in _check_cells()])
def test_a_check_cell_alone_after_a_restart_says_what_to_do(lesson, source):
    scope = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<check cell>", "exec"), scope)       # no exercise cell ran: the kernel was restarted
    name = CHECK_CALL.search(source).group(3)
    assert f"there is no `{name}` in this notebook yet" in out.getvalue() and "Run All Above" in out.getvalue()
    assert callable(scope[CHECK_CALL.search(source).group(1)])     # the notebook goes on with the reference


def test_no_stored_output_is_an_objects_address():
    """A cell ending in a call that returns an object (torch.manual_seed's Generator, a figure) prints
    `<... at 0x...>`: noise in a lesson. None of the stored outputs does."""
    for path in sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
                text = o.get("data", {}).get("text/plain", "") if o.output_type == "execute_result" else ""
                assert not re.search(r"<[\w.]+ (object )?at 0x[0-9a-f]+>|<Figure size", text), (path.name, i, text)
