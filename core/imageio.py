"""Reading and writing images, keeping what users of other upscalers lose.

Pillow does the formats and the metadata. Pillow has no 16-bit colour mode, so 16-bit RGB(A) and
gray + alpha PNGs are decoded and encoded with ``imagecodecs`` (libpng) and 16-bit colour TIFFs
with ``tifffile``; Pillow still reads their metadata.

``read_image`` returns the pixels as an ``(H, W, C)`` numpy array in the file's own bit depth
(uint8, or uint16 for 16-bit PNG and TIFF) and the metadata worth carrying over: the ICC profile,
EXIF (with the orientation already applied to the pixels and the tag reset) and the DPI.
``write_image`` writes such an array atomically (a temporary file in the target folder, fsync,
``os.replace``), so a crash or a cancel never leaves a half-written file behind.

Channels: 1 = gray (L, I;16), 2 = gray + alpha (LA), 3 = RGB, 4 = RGBA. Palette images become RGB
or RGBA (RGBA when the palette has transparency), CMYK becomes RGB (through its ICC profile when it
has one), 1-bit becomes gray.

DPI is kept unchanged on output: an upscaled image prints larger at the same density, which is
what upscaling for print is for (the same as Photoshop's Image Size with resampling on). Pixel
dimensions recorded in EXIF are updated to the new size.
"""

from __future__ import annotations

import glob
import io
import os
import secrets
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, PngImagePlugin, UnidentifiedImageError

from .. import __version__
from .errors import ImageReadError, ImageTooLargeError, ImageWriteError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "PNG_COMPRESS_LEVEL",
    "SOFTWARE",
    "SOFTWARE_NAME",
    "ImageMetadata",
    "LoadedImage",
    "format_for_path",
    "output_format",
    "read_image",
    "read_software",
    "temporary_files",
    "write_image",
]

SOFTWARE_NAME = "NEXUS Upscaler"
SOFTWARE = f"{SOFTWARE_NAME} {__version__}"
"""Written into every output (PNG text "Software", EXIF/TIFF Software): it is how a folder scan
knows our earlier outputs (``core.inputs.written_by_us``)."""

DEFAULT_MAX_PIXELS = 200_000_000
"""Largest image ``read_image`` opens by default (200 megapixels: a 16,000 x 12,500 scan): a guard
against decompression bombs, small files that decode to gigabytes. ``max_pixels`` raises it."""

PNG_COMPRESS_LEVEL = 4
"""Default zlib level of PNG (and deflate TIFF) outputs, 0-9: higher is smaller and slower. 4, as
ComfyUI's Save Image: Pillow's default 6 took 6.7 s on a 5760 x 4608 output where 4 took 3.9 s,
for files a few percent larger. ``write_image(compress_level=9)`` writes the smallest files."""

# format name -> (Pillow format, default extension)
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", ".png"),
    "jpg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "tiff": ("TIFF", ".tiff"),
}
_EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".jpe": "jpg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_ORIENTATION = 0x0112
_SOFTWARE_TAG = 0x0131
_TIFF_BITS, _TIFF_PHOTOMETRIC, _TIFF_SAMPLE_FORMAT = 258, 262, 339
_EXIF_IFD = 0x8769
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003


@dataclass
class ImageMetadata:
    """What is carried from the input to the output file.

    ``exif`` is the raw EXIF block with the orientation tag already reset to 1 (the pixels are
    upright); ``dpi`` is (x, y) dots per inch as the file stated it.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    source_format: str | None = None


@dataclass
class LoadedImage:
    """An image read from disk. ``array`` is ``(H, W, C)``, uint8 or uint16, C in 1..4."""

    path: Path
    array: np.ndarray
    mode: str  # the file's own Pillow mode, e.g. "P", "CMYK", "I;16"
    metadata: ImageMetadata = field(default_factory=ImageMetadata)
    notes: list[str] = field(default_factory=list)  # conversions done on reading

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def channels(self) -> int:
        return int(self.array.shape[2])

    @property
    def bit_depth(self) -> int:
        return 16 if self.array.dtype == np.uint16 else 8

    @property
    def is_gray(self) -> bool:
        return self.channels in (1, 2)

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)


def format_for_path(path: str | os.PathLike[str]) -> str | None:
    """The output format name ("png", "jpg", "webp", "tiff") for a path's extension, or None."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


# --- reading -----------------------------------------------------------------------------------


def read_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Read an image file into an ``(H, W, C)`` uint8/uint16 array plus its metadata.

    ``max_pixels``: refuse larger images (``ImageTooLargeError``), a guard against decompression
    bombs; None for no limit.

    Raises ImageReadError (naming the file) for a missing, unreadable, truncated or unsupported
    file, and ImageTooLargeError (an ImageReadError) over ``max_pixels``.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels}")
    try:
        return _read(path, max_pixels)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image, or in a format that cannot be read") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageReadError(path, f"unreadable or truncated image ({exc})") from exc
    except RuntimeError as exc:  # imagecodecs' and tifffile's decoder errors
        raise ImageReadError(path, f"unreadable or truncated image ({exc})") from exc


_PIL_LIMIT_LOCK = threading.Lock()


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    """``Image.open`` with our pixel limit instead of Pillow's global one.

    Pillow checks its module-wide ``MAX_IMAGE_PIXELS`` inside ``open`` and has no per-call limit,
    so the global is set to ours for the length of the (header-only) open, under a lock, and the
    size is then checked here.
    """
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    pixels = im.size[0] * im.size[1]
    if max_pixels is not None and pixels > max_pixels:
        im.close()
        raise ImageTooLargeError(path, pixels, max_pixels)
    return im


def read_software(path: str | os.PathLike[str]) -> str | None:
    """The "Software" an image file names (PNG text, EXIF or TIFF tag), or None.

    Reads the header only; any file it cannot read names no software.
    """
    try:
        with _open(Path(path), None) as im:
            software = im.info.get("Software")
            if not software and im.format == "TIFF":
                software = im.tag_v2.get(305)  # type: ignore[attr-defined]
            # A PNG's EXIF is read only from the header: to find an eXIf chunk after the image
            # data Pillow decodes every pixel (25 ms a photo, seconds for a folder), and we
            # write ours, text and eXIf, before it.
            if not software and (im.format != "PNG" or "exif" in im.info):
                software = im.getexif().get(_SOFTWARE_TAG)
    except Exception:  # noqa: BLE001 - not an image we can read: not one of ours either
        return None
    if isinstance(software, bytes):
        software = software.decode("latin-1", "replace")
    return software.strip("\x00 ") if isinstance(software, str) else None


def _read(path: Path, max_pixels: int | None) -> LoadedImage:
    notes: list[str] = []
    with _open(path, max_pixels) as im:
        fmt = im.format
        mode = im.mode
        wide = _wide_layout(im, path)
        info = dict(im.info)
        exif = im.getexif()
        if wide is None:
            im.load()  # decode now: truncated files fail here, inside our error handling
            array = _to_array(im, info, notes)
    if wide is not None:
        # Pillow has no 16-bit colour mode and would keep the high bytes only
        array = _read_wide(path, wide)

    icc = info.get("icc_profile") or None
    if mode == "CMYK":
        array, icc = _cmyk_to_rgb(array, icc, notes)

    orientation = int(exif.get(_ORIENTATION, 1) or 1)
    array = _apply_orientation(array, orientation)
    exif_bytes = None
    if len(exif):
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        exif_bytes = exif.tobytes()
    dpi = info.get("dpi")
    if dpi is not None:
        dpi = (float(dpi[0]), float(dpi[1]))
        if orientation in (5, 6, 7, 8):
            dpi = (dpi[1], dpi[0])
    metadata = ImageMetadata(icc_profile=icc, exif=exif_bytes, dpi=dpi, source_format=fmt)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # Pillow's buffers are read-only; torch warns about those
        array = array.copy()
    return LoadedImage(path=path, array=array, mode=mode, metadata=metadata, notes=notes)


def _wide_layout(im: Image.Image, path: Path) -> str | None:
    """ "PNG" or "TIFF" for a 16-bit colour or gray + alpha image Pillow would narrow, else None.

    PNG: the bit depth and colour type are bytes 24 and 25 of the file (the IHDR chunk, which the
    PNG specification puts first). TIFF: the BitsPerSample, Photometric and SampleFormat tags.
    """
    if im.format == "PNG":
        with path.open("rb") as f:
            header = f.read(26)
        if len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6):
            return "PNG"  # 16-bit RGB, gray + alpha, RGBA
        return None
    if im.format == "TIFF":
        tags = im.tag_v2  # type: ignore[attr-defined]
        bits = tags.get(_TIFF_BITS)
        bits = tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)
        samples = len(bits)
        unsigned = tags.get(_TIFF_SAMPLE_FORMAT, 1) in (1, (1,) * samples)
        photometric = tags.get(_TIFF_PHOTOMETRIC)
        colour = photometric == 2 and samples in (3, 4)
        gray_alpha = photometric in (0, 1) and samples == 2
        if set(bits) == {16} and unsigned and (colour or gray_alpha):
            return "TIFF"
    return None


def _read_wide(path: Path, layout: str) -> np.ndarray:
    """The 16-bit samples of a PNG (imagecodecs' libpng) or of a TIFF's first page (tifffile)."""
    if layout == "PNG":
        import imagecodecs

        array = imagecodecs.png_decode(path.read_bytes())
    else:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            array = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                array = np.moveaxis(array, 0, -1)
            if page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
                array = array.copy()
                array[..., 0] = 65535 - array[..., 0]
    array = np.asarray(array)
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise ImageReadError(path, f"unexpected 16-bit layout {array.dtype} {array.shape}")
    return array


def _to_array(im: Image.Image, info: dict, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16)[:, :, None]
    if mode in ("I", "F"):
        # 16-bit gray PNG/TIFF that Pillow widened to 32 bits; values outside 16 bits are clipped
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            notes.append(f"{mode} values clipped to 0..65535")
        return np.clip(np.rint(values), 0, 65535).astype(np.uint16)[:, :, None]
    if mode == "1":
        return np.asarray(im.convert("L"))[:, :, None]
    if mode == "L":
        return np.asarray(im)[:, :, None]
    if mode == "LA":
        return np.asarray(im)
    if mode == "La":
        return np.asarray(im.convert("LA"))
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in info or im.palette.mode == "RGBA"
        return np.asarray(im.convert("RGBA" if alpha else "RGB"))
    if mode == "RGBA":
        return np.asarray(im)
    if mode in ("RGBa",):
        return np.asarray(im.convert("RGBA"))
    if mode == "CMYK":
        return np.asarray(im)  # converted after reading, with the ICC profile
    if mode == "RGB":
        if "transparency" in info:
            return np.asarray(im.convert("RGBA"))
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))  # RGBX, YCbCr, LAB, HSV


def _cmyk_to_rgb(
    array: np.ndarray, icc: bytes | None, notes: list[str]
) -> tuple[np.ndarray, bytes | None]:
    im = Image.fromarray(array, "CMYK")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
            notes.append("CMYK converted to sRGB through its ICC profile")
            return np.asarray(rgb), ImageCms.ImageCmsProfile(srgb).tobytes()
        except (ImageCms.PyCMSError, OSError):
            pass
    notes.append("CMYK converted to RGB (the CMYK ICC profile is not carried over)")
    return np.asarray(im.convert("RGB")), None


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Make the pixels upright as EXIF orientation 1..8 asks (as ImageOps.exif_transpose)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(array, 1)
    return array


# --- writing -----------------------------------------------------------------------------------


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    metadata: ImageMetadata | None = None,
    format: str | None = None,
    quality: int = 95,
    compress_level: int | None = None,
) -> list[str]:
    """Write an ``(H, W, C)`` or ``(H, W)`` uint8/uint16 array atomically, with metadata.

    ``format`` is "png", "jpg", "webp" or "tiff" (default: from the extension). ``quality`` (1-100)
    applies to JPEG and WebP; WebP at 100 is lossless. ``compress_level`` (0-9, default
    ``PNG_COMPRESS_LEVEL``) is the zlib level of PNG and TIFF: 9 for the smallest files. Returns notes on lossy conversions the
    format forced: JPEG has no alpha (flattened onto white) and no 16 bits (rounded to 8); WebP
    has no 16 bits and no gray. Raises ImageWriteError naming the file on failure, leaving no
    partial file behind.
    """
    path = Path(path)
    fmt = output_format(path, format)
    if not 1 <= int(quality) <= 100:
        raise ImageWriteError(path, f"quality must be 1..100, got {quality}")
    level = PNG_COMPRESS_LEVEL if compress_level is None else int(compress_level)
    if not 0 <= level <= 9:
        raise ImageWriteError(path, f"the compression level must be 0..9, got {compress_level}")
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageWriteError(path, f"cannot write an array of shape {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageWriteError(path, f"cannot write {array.dtype} pixels (uint8 or uint16 only)")
    metadata = metadata or ImageMetadata()
    notes: list[str] = []
    exif = _exif_for_output(metadata.exif, array.shape[1], array.shape[0])
    software = PngImagePlugin.PngInfo()
    software.add_text("Software", SOFTWARE)

    if fmt == "jpg":
        array = _flatten_alpha(array, notes, "JPEG")
    if fmt in ("jpg", "webp") and array.dtype == np.uint16:
        notes.append(f"{fmt.upper()} holds 8 bits per channel: 16-bit output rounded to 8 bits")
        array = _to_8bit(array)
    if fmt == "webp" and array.shape[2] in (1, 2):
        notes.append("WebP has no gray mode: gray output stored as RGB")
        array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else _la_to_rgba(array)

    def save(fileobj: io.BufferedWriter) -> None:
        if array.dtype == np.uint16 and array.shape[2] > 1:
            if fmt == "png":
                _write_png16(fileobj, array, metadata.icc_profile, exif, metadata.dpi, level)
                return
            _write_tiff16(fileobj, array, metadata.icc_profile, metadata.dpi, level)
            notes.append("16-bit colour TIFF written without EXIF (tifffile writes no EXIF block)")
            return
        im = _to_pil(array)
        kwargs: dict = {}
        if metadata.icc_profile:
            kwargs["icc_profile"] = metadata.icc_profile
        if fmt == "png":
            kwargs["pnginfo"] = software
            if exif:
                kwargs["exif"] = exif
        else:
            kwargs["exif"] = exif or _software_exif()
        if metadata.dpi and fmt != "webp":
            kwargs["dpi"] = metadata.dpi
        if fmt == "jpg":
            kwargs.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
        elif fmt == "webp":
            kwargs.update(quality=int(quality), lossless=int(quality) >= 100, method=4)
        elif fmt == "png":
            kwargs.update(compress_level=level)
        elif fmt == "tiff":
            kwargs.update(compression="tiff_adobe_deflate")
        try:
            im.save(fileobj, format=FORMATS[fmt][0], **kwargs)
        except RuntimeError:
            if fmt != "tiff":
                raise
            # libtiff (used for compression) cannot write an EXIF sub-IFD; Pillow's own writer can
            fileobj.seek(0)
            fileobj.truncate()
            kwargs["compression"] = None
            im.save(fileobj, format="TIFF", **kwargs)

    _atomic_write(path, save)
    return notes


def output_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format to write: the name's, or ``format`` for a name without a known extension.

    A ``format`` that contradicts the name is an error: JPEG bytes in a ``.png`` file would be
    misread by every program that trusts the extension. Raises ImageWriteError naming the file.
    """
    path = Path(path)
    named = format_for_path(path)
    asked = format.lower().replace("jpeg", "jpg") if format else None
    if asked is not None and asked not in FORMATS:
        raise ImageWriteError(
            path, f"unknown output format {format!r}; use one of {', '.join(FORMATS)}"
        )
    if asked is not None and named is not None and asked != named:
        raise ImageWriteError(
            path,
            f"the name says {named.upper()} but the format asked for is {asked.upper()}; "
            f"name the file {path.stem}{FORMATS[asked][1]}, or leave the format to the name",
        )
    fmt = asked or named
    if fmt is None:
        raise ImageWriteError(
            path,
            f"cannot tell the format from {path.suffix or 'a name without extension'!r}; "
            f"use one of {', '.join(FORMATS)}",
        )
    return fmt


def _software_exif() -> bytes:
    exif = Image.Exif()
    exif[_SOFTWARE_TAG] = SOFTWARE
    return exif.tobytes()


def _to_pil(array: np.ndarray) -> Image.Image:
    # Pillow picks the mode from the array: 2-D uint16 -> I;16, 2-D uint8 -> L, 2/3/4 -> LA/RGB/RGBA
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(array))


def _to_8bit(array: np.ndarray) -> np.ndarray:
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _la_to_rgba(array: np.ndarray) -> np.ndarray:
    return np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)


def _flatten_alpha(array: np.ndarray, notes: list[str], fmt: str) -> np.ndarray:
    if array.shape[2] not in (2, 4):
        return array
    notes.append(f"{fmt} has no alpha channel: transparency flattened onto white")
    maximum = 65535.0 if array.dtype == np.uint16 else 255.0
    color = array[:, :, :-1].astype(np.float32)
    alpha = array[:, :, -1:].astype(np.float32) / maximum
    flat = color * alpha + maximum * (1.0 - alpha)
    return np.clip(np.rint(flat), 0, maximum).astype(array.dtype)


def _exif_for_output(exif: bytes | None, width: int, height: int) -> bytes | None:
    """The EXIF block with orientation 1 and the recorded pixel size set to the output's."""
    if not exif:
        return None
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        if _ORIENTATION in parsed:
            parsed[_ORIENTATION] = 1
        parsed[_SOFTWARE_TAG] = SOFTWARE
        if _EXIF_IFD in parsed:  # get_ifd() would otherwise add an empty sub-IFD
            sub = parsed.get_ifd(_EXIF_IFD)
            if _PIXEL_X in sub:
                sub[_PIXEL_X] = width
            if _PIXEL_Y in sub:
                sub[_PIXEL_Y] = height
        return parsed.tobytes()
    except Exception:  # noqa: BLE001 - a malformed EXIF block is passed through untouched
        return exif


_TOKEN_BYTES = 4


def _temporary_name(path: Path, token: str) -> Path:
    return path.parent / f".{path.name}.{token}.tmp"


def temporary_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files of writes to ``path`` that are (or were) under way: a process killed
    mid-write (a cluster worker lost with its node) leaves one behind, which no ``finally`` of
    that process could remove. Empty when the folder does not exist."""
    path = Path(path)
    try:
        pattern = _temporary_name(Path(glob.escape(path.name)), "?" * (2 * _TOKEN_BYTES))
        return sorted(path.parent.glob(pattern.name))
    except OSError:
        return []


def _atomic_write(path: Path, save) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(path, f"cannot create the folder ({exc.strerror or exc})") from exc
    tmp = _temporary_name(path, secrets.token_hex(_TOKEN_BYTES))
    try:
        # "x": created here or not at all (O_EXCL); the umask decides the permissions
        with open(tmp, "xb") as fileobj:
            save(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, ValueError, KeyError, TypeError)):
            raise ImageWriteError(path, f"cannot write ({exc})") from exc
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # makes the rename itself durable on POSIX; Windows cannot open folders, nothing to do there
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- 16-bit colour writers (Pillow has no 16-bit RGB mode) -------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png16(
    fileobj,
    array: np.ndarray,
    icc: bytes | None,
    exif: bytes | None,
    dpi: tuple[float, float] | None,
    level: int = PNG_COMPRESS_LEVEL,
) -> None:
    """A 16-bit gray + alpha, RGB or RGBA PNG: libpng (through imagecodecs) encodes the pixels.

    imagecodecs writes no metadata, so the ICC profile, DPI, EXIF and our Software text go in as
    chunks right after IHDR (the PNG specification's order: all of them before IDAT).
    """
    import imagecodecs

    encoded = imagecodecs.png_encode(np.ascontiguousarray(array), level=level)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length and type, IHDR data, CRC
    if encoded[12:16] != b"IHDR":
        raise ValueError("libpng wrote no IHDR chunk first")
    chunks = [_png_chunk(b"tEXt", b"Software\x00" + SOFTWARE.encode("latin-1"))]
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        chunks.append(_png_chunk(b"eXIf", body))
    fileobj.write(encoded[:ihdr_end] + b"".join(chunks) + encoded[ihdr_end:])


def _write_tiff16(
    fileobj,
    array: np.ndarray,
    icc: bytes | None,
    dpi: tuple[float, float] | None,
    level: int = PNG_COMPRESS_LEVEL,
) -> None:
    """A 16-bit RGB, RGBA or gray + alpha TIFF (tifffile), deflate-compressed with the
    horizontal predictor, with the ICC profile, DPI and our Software tag."""
    import tifffile

    channels = array.shape[2]
    tifffile.imwrite(
        fileobj,
        array,
        photometric="minisblack" if channels == 2 else "rgb",
        planarconfig="contig",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="adobe_deflate",
        compressionargs={"level": level},
        predictor=True,
        iccprofile=icc,
        resolution=dpi,
        resolutionunit="inch" if dpi else None,
        software=SOFTWARE,
        metadata=None,  # no tifffile JSON in ImageDescription
    )
