"""Image files `fau predict` must read right or refuse in one line: 16-bit PNGs scaled (not clipped to
white), decompression bombs refused per file while the batch goes on. Photos: scikit-image's astronaut."""

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.data
from PIL import Image

import fau
from fau.cli import main
from fau.face.pipeline import load_image
from shared.errors import UserError
from tests.fau.test_predict import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return fau.load(checkpoint, device="cpu")


def astronaut_grey16() -> np.ndarray:
    return np.rint(skimage.color.rgb2gray(skimage.data.astronaut()) * 65535).astype(np.uint16)


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit greyscale PNG of side x side pixels (above Pillow's refusal limit) that is ~60 kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_16_bit_grey_png_is_scaled_to_8_bits_and_its_face_found(predictor, tmp_path):
    grey16 = astronaut_grey16()
    path = tmp_path / "grey16.png"
    Image.fromarray(grey16).save(path)
    with Image.open(path) as handle:
        assert handle.mode.startswith("I;16")          # Pillow really hands over 16-bit values
    image = load_image(path)
    expected = np.rint(grey16 / 257.0).astype(np.uint8)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], expected) and np.array_equal(image[..., 2], expected)
    assert image.mean() < 200                           # not clipped to white
    (face,) = predictor.predict(path)["faces"]
    box = face["box"]
    assert 150 < (box[0] + box[2]) / 2 < 300 and 50 < (box[1] + box[3]) / 2 < 200   # the astronaut's face


def test_16_bit_rgb_png_reads_as_the_8_bit_photo(predictor, tmp_path):
    astronaut = skimage.data.astronaut()
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut.astype(np.uint16) * 257, cv2.COLOR_RGB2BGR))
    assert np.array_equal(load_image(path), astronaut)
    assert len(predictor.predict(path)["faces"]) == 1


def test_float_and_32_bit_images_out_of_range_are_refused_by_name(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((8, 8), 3.5, np.float32)).save(path)
    with pytest.raises(UserError, match="float.tif.*outside"):
        load_image(path)
    ok = tmp_path / "unit.tif"
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(ok)
    assert load_image(ok).max() == 128


def test_decompression_bomb_is_one_line_and_the_batch_goes_on(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    png_bomb(photos / "bomb.png")
    Image.fromarray(skimage.data.astronaut()).save(photos / "z_astronaut.png")
    with pytest.raises(UserError, match="bomb.png.*too large"):
        load_image(photos / "bomb.png")
    out = tmp_path / "r.json"
    for attempt in range(2):                             # the rerun retries the bomb: same answer
        assert main(["predict", str(photos), "--json", str(out), "--checkpoint", str(checkpoint),
                     "--device", "cpu", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        (line,) = [m for m in err.splitlines() if "bomb.png" in m]
        assert line.startswith("fau predict: error: image") and "too large" in line
        bomb, astronaut = json.loads(out.read_text())
        assert bomb["faces"] == [] and "too large" in bomb["error"] and len(astronaut["faces"]) == 1


def test_16_bit_arrays_are_scaled_like_16_bit_files(predictor):
    result = predictor.predict(astronaut_grey16())
    assert len(result["faces"]) == 1
