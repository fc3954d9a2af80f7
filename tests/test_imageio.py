"""Image reading and writing: every mode a user brings, metadata carried over, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from nexus_upscaler.core.errors import ImageReadError, ImageTooLargeError, ImageWriteError
from nexus_upscaler.core.imageio import (
    DEFAULT_MAX_PIXELS,
    SOFTWARE,
    ImageMetadata,
    read_image,
    read_software,
    temporary_files,
    write_image,
)
from PIL import Image, ImageCms, ImageOps

RNG = np.random.default_rng(1234)


def rgb(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_modes_become_the_documented_channels(tmp_path):
    base = Image.fromarray(rgb())
    cases = {
        "RGB": (base, 3),
        "RGBA": (base.convert("RGBA"), 4),
        "L": (base.convert("L"), 1),
        "LA": (base.convert("LA"), 2),
        "P": (base.convert("P"), 3),
        "1": (base.convert("1"), 1),
    }
    for name, (im, channels) in cases.items():
        path = tmp_path / f"{name}.png"
        im.save(path)
        loaded = read_image(path)
        assert loaded.array.shape == (12, 17, channels), name
        assert loaded.array.dtype == np.uint8
        assert loaded.mode == name


def test_palette_with_transparency_becomes_rgba(tmp_path):
    im = Image.new("P", (8, 6), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (0, 0, 4, 6))
    im.info["transparency"] = 0
    path = tmp_path / "p.png"
    im.save(path, transparency=0)
    loaded = read_image(path)
    assert loaded.array.shape == (6, 8, 4)
    assert (loaded.array[:, :4, 3] == 255).all() and (loaded.array[:, 4:, 3] == 0).all()
    assert (loaded.array[:, :4, :3] == [0, 255, 0]).all()


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (9, 7), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    loaded = read_image(path)
    assert loaded.array.shape == (7, 9, 3)
    r, g, b = loaded.array[3, 4].astype(int)
    assert r > 200 and g < 60 and b < 60
    assert any("CMYK" in note for note in loaded.notes)


@pytest.mark.parametrize("ext", ["png", "tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_round_trips_exactly(tmp_path, ext, channels):
    """16-bit gray, RGB and RGBA keep all 16 bits through write and read."""
    array = RNG.integers(0, 65536, (9, 13, channels), dtype=np.uint16)
    path = tmp_path / f"deep.{ext}"
    write_image(path, array)
    loaded = read_image(path)
    assert loaded.array.dtype == np.uint16
    np.testing.assert_array_equal(loaded.array, array)


def test_16_bit_png_written_by_pillow_is_read_16_bit(tmp_path):
    gray = RNG.integers(0, 65536, (10, 11), dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)
    loaded = read_image(path)
    assert loaded.bit_depth == 16 and loaded.is_gray
    np.testing.assert_array_equal(loaded.array[:, :, 0], gray)


def _png_gray_alpha16(path, array):
    """A 16-bit gray+alpha PNG whose rows cycle through all five PNG filters (bpp 4)."""
    h, w, _ = array.shape
    raw = array.astype(">u2").view(np.uint8).reshape(h, w * 4).astype(np.int16)
    rows = []
    for y in range(h):
        cur = raw[y]
        up = raw[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(4, np.int16), cur[:-4]])
        upleft = np.concatenate([np.zeros(4, np.int16), up[:-4]])
        p = left + up - upleft
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        kind = y % 5
        pred = [0, left, up, (left + up) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes())

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))


def test_16_bit_gray_alpha_png_keeps_all_16_bits(tmp_path):
    """Pillow opens 16-bit gray+alpha from the high bytes only; we read every bit, whatever
    filter each row was written with, and write it back 16-bit."""
    array = RNG.integers(0, 65536, (11, 13, 2), dtype=np.uint16)
    path = tmp_path / "la16.png"
    _png_gray_alpha16(path, array)
    assert Image.open(path).mode == "RGBA"  # what Pillow alone makes of it
    loaded = read_image(path)
    assert loaded.array.dtype == np.uint16 and loaded.notes == []
    np.testing.assert_array_equal(loaded.array, array)
    out = tmp_path / "out.png"
    write_image(out, loaded.array, loaded.metadata)
    np.testing.assert_array_equal(read_image(out).array, array)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_reset(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(rgb(10, 16)).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.array, expected)
    out = tmp_path / "out.png"
    write_image(out, loaded.array, loaded.metadata)
    assert Image.open(out).getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("ext", ["png", "jpg", "tiff", "webp"])
def test_icc_exif_dpi_survive(tmp_path, ext):
    icc = srgb_icc()
    exif = Image.Exif()
    exif[0x010F] = "NEXUS test camera"  # Make
    exif.get_ifd(0x8769)[0xA002] = 17  # PixelXDimension, in the Exif sub-IFD
    src = tmp_path / "src.png"
    Image.fromarray(rgb()).save(src, icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300))
    loaded = read_image(src)
    assert loaded.metadata.icc_profile == icc
    assert loaded.metadata.dpi is not None and round(loaded.metadata.dpi[0]) == 300
    out = tmp_path / f"out.{ext}"
    big = np.repeat(np.repeat(loaded.array, 2, 0), 2, 1)
    write_image(out, big, loaded.metadata)
    with Image.open(out) as im:
        assert im.size == (34, 24)
        assert im.info.get("icc_profile") == icc
        assert im.getexif().get(0x010F) == "NEXUS test camera"
        assert im.getexif().get_ifd(0x8769).get(0xA002) == 34  # the new width
        if ext != "webp":  # WebP has no DPI field (its EXIF still carries the camera data)
            assert round(im.info["dpi"][0]) == 300  # DPI unchanged: the print grows with the pixels


def test_16_bit_metadata_survives(tmp_path):
    icc = srgb_icc()
    array = RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x010F] = "deep camera"
    meta = ImageMetadata(icc_profile=icc, exif=exif.tobytes(), dpi=(240.0, 240.0))
    write_image(tmp_path / "d.png", array, meta)
    loaded = read_image(tmp_path / "d.png")
    assert loaded.metadata.icc_profile == icc
    assert round(loaded.metadata.dpi[0]) == 240
    assert Image.open(tmp_path / "d.png").getexif().get(0x010F) == "deep camera"


def test_jpeg_flattens_alpha_onto_white_and_says_so(tmp_path):
    array = np.zeros((8, 8, 4), np.uint8)
    array[..., 0] = 255  # red, fully transparent on the left half
    array[:, 4:, 3] = 255
    notes = write_image(tmp_path / "a.jpg", array, quality=100)
    assert any("alpha" in n for n in notes)
    back = np.asarray(Image.open(tmp_path / "a.jpg")).astype(int)
    assert back[:, :2].min() > 240  # white where transparent
    assert back[:, 6:, 0].min() > 240 and back[:, 6:, 1].max() < 20


def test_jpeg_rounds_16_bit_to_8_and_says_so(tmp_path):
    array = np.full((4, 4, 3), 257 * 100, np.uint16)
    notes = write_image(tmp_path / "d.jpg", array, quality=100)
    assert any("8 bits" in n for n in notes)
    assert abs(int(np.asarray(Image.open(tmp_path / "d.jpg"))[2, 2, 0]) - 100) <= 1


def test_gray_stays_gray_on_write(tmp_path):
    gray = RNG.integers(0, 256, (6, 7, 1), dtype=np.uint8)
    for ext in ("png", "jpg", "tiff"):
        write_image(tmp_path / f"g.{ext}", gray)
        assert Image.open(tmp_path / f"g.{ext}").mode == "L"


def test_decompression_bomb_is_refused_and_a_genuine_image_read_with_a_higher_limit(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(rgb(64, 64)).save(path)
    with pytest.raises(ImageTooLargeError, match="decompression bomb") as info:
        read_image(path, max_pixels=1000)
    message = str(info.value)
    assert str(path) in message and "--max-pixels" in message
    assert "PIL" not in message and "MAX_IMAGE_PIXELS" not in message  # no library internals
    assert info.value.pixels == 4096 and info.value.limit == 1000
    assert read_image(path, max_pixels=4096).array.shape == (64, 64, 3)


def test_the_pixel_limit_is_ours_not_pillows_global(tmp_path, monkeypatch):
    """A host application's Pillow limit neither blocks nor loosens ours, and stays as it was."""
    path = tmp_path / "big.png"
    Image.fromarray(rgb(64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # far below 4096 (Pillow: an error)
    assert read_image(path).array.shape == (64, 64, 3)  # our default limit is the one in force
    assert read_image(path, max_pixels=None).array.shape == (64, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    assert DEFAULT_MAX_PIXELS >= 100_000_000  # a 90-megapixel photo opens by default
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(path, max_pixels=0)


@pytest.mark.parametrize(
    ("ext", "dtype", "channels"),
    [
        ("png", np.uint8, 3),
        ("png", np.uint16, 3),
        ("png", np.uint16, 2),
        ("jpg", np.uint8, 3),
        ("webp", np.uint8, 4),
        ("tiff", np.uint8, 3),
        ("tiff", np.uint16, 4),
        ("tiff", np.uint16, 1),
    ],
)
def test_every_output_names_our_software(tmp_path, ext, dtype, channels):
    """Our mark is how a folder scan tells our earlier outputs from the user's images."""
    array = RNG.integers(0, np.iinfo(dtype).max, (6, 7, channels), dtype=dtype)
    path = tmp_path / f"out.{ext}"
    write_image(path, array)
    assert read_software(path) == SOFTWARE
    plain = tmp_path / f"plain.{ext}"
    Image.fromarray(rgb()).save(plain)
    assert read_software(plain) is None
    assert read_software(tmp_path / "missing.png") is None


def test_software_is_read_from_the_header_without_decoding(tmp_path, monkeypatch):
    """A folder scan asks every file; decoding each photo made adding a folder take seconds."""
    from PIL import PngImagePlugin

    decoded = []
    real_load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(
        PngImagePlugin.PngImageFile,
        "load",
        lambda self: decoded.append(self.filename) or real_load(self),
    )
    plain = tmp_path / "photo.png"
    Image.fromarray(rgb()).save(plain)
    assert read_software(plain) is None
    exif = Image.Exif()
    exif[0x0131] = SOFTWARE  # our mark in EXIF only, before the image data as we write it
    tagged = tmp_path / "tagged.png"
    Image.fromarray(rgb()).save(tagged, exif=exif)
    assert read_software(tagged) == SOFTWARE
    assert decoded == []


def test_16_bit_tiff_is_compressed_with_its_metadata(tmp_path):
    """Smooth 16-bit data (what an upscaler writes) deflates well; the tags a reader needs."""
    import tifffile

    ramp = np.linspace(0, 65535, 256, dtype=np.float64)
    array = np.stack([*np.meshgrid(ramp, ramp), np.full((256, 256), 1000.0)], -1).astype(np.uint16)
    icc = srgb_icc()
    path = tmp_path / "deep.tiff"
    write_image(path, array, ImageMetadata(icc_profile=icc, dpi=(300.0, 300.0)))
    assert path.stat().st_size < array.nbytes / 4
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.tags["Software"].value == SOFTWARE
        assert page.tags["InterColorProfile"].value == icc
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.array, array)
    assert loaded.metadata.icc_profile == icc and round(loaded.metadata.dpi[0]) == 300


def test_16_bit_tiff_of_other_programs_is_read_at_full_depth(tmp_path):
    """Planar (one plane per channel) and big-endian 16-bit TIFFs, as scanners write them."""
    import tifffile

    array = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.moveaxis(array, -1, 0),
        planarconfig="separate",
        photometric="rgb",
    )
    tifffile.imwrite(
        tmp_path / "big.tif",
        array,
        byteorder=">",
        photometric="rgb",
        compression="lzw" if _has_lzw() else None,
    )
    for name in ("planar.tif", "big.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name).array, array)


def _has_lzw() -> bool:
    try:
        import imagecodecs

        return bool(imagecodecs.LZW.available)
    except ImportError:
        return False


def test_a_format_that_contradicts_the_name_is_refused(tmp_path):
    """JPEG bytes in a .png file fool every program that trusts the extension."""
    with pytest.raises(ImageWriteError, match="name says PNG"):
        write_image(tmp_path / "named.png", rgb(), format="jpg")
    assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / "named.jpeg", rgb(), format="jpg")  # jpeg and jpg are one format
    write_image(tmp_path / "noext", rgb(), format="png")  # no extension: the format decides
    assert Image.open(tmp_path / "noext").format == "PNG"


def test_unreadable_and_truncated_files_name_the_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.png"):
        read_image(text)
    buffer = io.BytesIO()
    Image.fromarray(rgb(64, 64)).save(buffer, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(cut)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    """A save that fails half way leaves neither a partial output nor a temporary file."""
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError, match="out.png"):
        write_image(target, rgb())
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]


def test_temporary_files_of_a_write_under_way_are_found(tmp_path, monkeypatch):
    """What a process killed mid-write leaves behind is found by the output's name alone (the
    cluster removes what its killed workers left), and nothing else is: not another output's,
    not a name that only looks alike, whatever glob characters the name holds."""
    target = tmp_path / "[a]*_x2.png"
    other = tmp_path / "a_x2.png"
    (tmp_path / ".a_x2.png.0123abcd.tmp").write_bytes(b"other output's")
    (tmp_path / f".{target.name}.note.tmp").write_bytes(b"not ours")
    seen = []
    save = Image.Image.save

    def watched_save(self, fp, *args, **kwargs):
        seen.extend(temporary_files(target))
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", watched_save)
    write_image(target, rgb())
    assert len(seen) == 1 and seen[0].name.startswith(f".{target.name}.")
    assert not seen[0].exists() and temporary_files(target) == []
    assert [p.name for p in temporary_files(other)] == [".a_x2.png.0123abcd.tmp"]
    assert temporary_files(tmp_path / "missing" / "x.png") == []


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ImageWriteError, match="format"):
        write_image(tmp_path / "x.bmp", rgb())
