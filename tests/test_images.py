import numpy as np
import pytest
from PIL import Image

from captionlib.images import ImageLoadError, load_image, to_tensor


def _rgb(path, colour=(200, 30, 30), size=(40, 30)):
    Image.new("RGB", size, colour).save(path)
    return path


def test_grayscale_becomes_rgb(tmp_path):
    p = tmp_path / "g.png"
    Image.new("L", (20, 10), 128).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (20, 10) and img.getpixel((0, 0)) == (128, 128, 128)


def test_rgba_transparent_pixels_become_white(tmp_path):
    p = tmp_path / "a.png"
    im = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((5, 5)) == (255, 0, 0)


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "p.png"
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    im.info["transparency"] = 0
    im.save(p, transparency=0)
    assert load_image(p).getpixel((3, 3)) == (10, 200, 10)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p)  # red in CMYK
    r, g, b = load_image(p).getpixel((8, 8))
    assert load_image(p).mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_grayscale(tmp_path):
    p = tmp_path / "16.png"
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(p)
    assert load_image(p).getpixel((1, 1)) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    p = tmp_path / "rot.jpg"
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(p, exif=exif)
    assert load_image(p).size == (20, 40)


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text, not a jpeg")
    with pytest.raises(ImageLoadError, match="not_an_image.jpg"):
        load_image(bad)
    good = _rgb(tmp_path / "full.jpg", size=(256, 256))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(ImageLoadError, match="cut.jpg.*(corrupt|truncated)"):
        load_image(cut)
    with pytest.raises(ImageLoadError, match="missing.png: no such file"):
        load_image(tmp_path / "missing.png")


def test_to_tensor_shape_and_normalisation():
    img = Image.new("RGB", (50, 30), (255, 0, 127))
    x = to_tensor([img, img], 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert x.shape == (2, 3, 32, 32)
    assert np.allclose(x[0, :, 5, 5].numpy(), [1.0, -1.0, 127 / 127.5 - 1], atol=1e-5)


def test_uploaded_bytes_load_like_files(tmp_path):
    p = tmp_path / "photo.png"
    Image.new("RGBA", (6, 4), (10, 200, 10, 255)).save(p)
    img = load_image("upload.png", data=p.read_bytes())
    assert img.mode == "RGB" and img.size == (6, 4) and img.getpixel((1, 1)) == (10, 200, 10)
    with pytest.raises(ImageLoadError, match="upload.txt: not an image"):
        load_image("upload.txt", data=b"hello")


def test_the_torchvision_pipeline_equals_the_split_form_feature_extraction_runs():
    import torch

    from captionlib.encoder import Encoder
    from captionlib.images import normalize, resized, transform

    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((300, 200), (224, 224))]
    photos.append(photos[0].convert("L"))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    split = normalize(torch.from_numpy(np.stack([resized(p, 224) for p in photos])), mean, std)   # (B, 3, S, S)
    piped = torch.stack([transform(224, mean, std)(p) for p in photos])
    assert piped.shape == (3, 3, 224, 224) and piped.dtype == torch.float32
    torch.testing.assert_close(piped, split, rtol=0, atol=1e-5)
    torch.testing.assert_close(to_tensor(photos, 224, mean, std), split, rtol=0, atol=1e-5)
    b = Encoder().backbone                        # its own normalisation (EfficientNet-Lite's is not ImageNet's usual)
    torch.testing.assert_close(Encoder().transform(photos[0]),
                               normalize(torch.from_numpy(np.stack([resized(photos[0], 224)])), b.mean, b.std)[0], rtol=0, atol=1e-5)
