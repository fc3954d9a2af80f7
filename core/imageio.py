"""Reading and writing images with Pillow, keeping what users of other upscalers lose.

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

import io
import os
import secrets
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from .errors import ImageReadError, ImageWriteError

__all__ = [
    "FORMATS",
    "ImageMetadata",
    "LoadedImage",
    "format_for_path",
    "read_image",
    "write_image",
]

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


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read an image file into an ``(H, W, C)`` uint8/uint16 array plus its metadata.

    Raises ImageReadError (naming the file) for a missing, unreadable, truncated or unsupported
    file, and for a decompression bomb (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse at the limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _read(path)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(
            path,
            f"refusing to open a possible decompression bomb ({exc}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS if the image is genuine",
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image, or a format Pillow cannot read") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageReadError(path, f"unreadable or truncated image ({exc})") from exc


def _read(path: Path) -> LoadedImage:
    notes: list[str] = []
    with Image.open(path) as im:
        fmt = im.format
        mode = im.mode
        rawmode = _rawmode(im)  # before getexif(), which may decode and clear the tiles
        info = dict(im.info)
        exif = im.getexif()
        im.load()  # decode now: truncated files fail here, inside our error handling
        array = _to_array(im, info, notes)
    if rawmode is not None and array.dtype == np.uint8 and _is_wide(rawmode):
        # Pillow has no 16-bit RGB(A) mode and keeps only the high byte; decode the low bytes too.
        wide = _read_wide(path, rawmode)
        if wide is not None:
            array = wide
        else:
            notes.append(f"16-bit {mode} read as 8-bit (Pillow cannot read its low bytes)")
    elif rawmode is not None and rawmode.startswith("LA;16"):
        # Pillow opens 16-bit gray+alpha as RGBA from the high bytes only
        wide = _read_gray_alpha16(path, rawmode) if fmt == "PNG" else None
        if wide is not None:
            array = wide
        else:
            array = array[:, :, [0, 3]]
            notes.append("16-bit gray+alpha read as 8-bit (Pillow keeps only the high bytes)")

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


def _rawmode(im: Image.Image) -> str | None:
    if not im.tile:
        return None
    args = im.tile[0].args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _is_wide(rawmode: str) -> bool:
    return rawmode.startswith(("RGB;16", "RGBA;16"))


def _read_wide(path: Path, rawmode: str) -> np.ndarray | None:
    """16-bit RGB(A): decode twice, once keeping the high byte of each sample, once the low.

    Pillow's unpackers "X;16B" and "X;16L" both take the high byte of a big- or little-endian
    sample; asking for the opposite byte order on the same data yields the low bytes instead,
    while Pillow still does all the decompression and PNG/TIFF filtering in C.
    """
    swapped = rawmode[:-1] + ("L" if rawmode.endswith("B") else "B")
    with Image.open(path) as im:
        hi = np.asarray(im)
    with Image.open(path) as im:
        im.tile = [_swap_rawmode(t, rawmode, swapped) for t in im.tile]
        try:
            im.load()
        except (OSError, ValueError):
            return None
        lo = np.asarray(im)
    if hi.shape != lo.shape:
        return None
    return (hi.astype(np.uint16) << 8) | lo.astype(np.uint16)


def _read_gray_alpha16(path: Path, rawmode: str) -> np.ndarray | None:
    """16-bit gray+alpha PNG: its 4 bytes per pixel decoded as if they were 8-bit RGBA.

    PNG filters work on whole bytes with the same 4-byte pixel stride either way, so Pillow's
    C decoder undoes them and hands back the samples' bytes: (gray hi, gray lo, alpha hi, alpha lo).
    """
    with Image.open(path) as im:
        im.tile = [_swap_rawmode(t, rawmode, "RGBA") for t in im.tile]
        try:
            im.load()
        except (OSError, ValueError):
            return None
        raw = np.asarray(im).astype(np.uint16)
    return np.stack([(raw[..., 0] << 8) | raw[..., 1], (raw[..., 2] << 8) | raw[..., 3]], axis=-1)


def _swap_rawmode(tile: ImageFile._Tile, old: str, new: str) -> ImageFile._Tile:
    args = tile.args
    if isinstance(args, str):
        args = new if args == old else args
    elif isinstance(args, tuple) and args and args[0] == old:
        args = (new, *args[1:])
    return tile._replace(args=args)


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
) -> list[str]:
    """Write an ``(H, W, C)`` or ``(H, W)`` uint8/uint16 array atomically, with metadata.

    ``format`` is "png", "jpg", "webp" or "tiff" (default: from the extension). ``quality`` (1-100)
    applies to JPEG and WebP; WebP at 100 is lossless. Returns notes on lossy conversions the
    format forced: JPEG has no alpha (flattened onto white) and no 16 bits (rounded to 8); WebP
    has no 16 bits and no gray. Raises ImageWriteError naming the file on failure, leaving no
    partial file behind.
    """
    path = Path(path)
    fmt = format.lower() if format else format_for_path(path)
    if fmt == "jpeg":
        fmt = "jpg"
    if fmt not in FORMATS:
        raise ImageWriteError(
            path,
            f"unknown output format {format or path.suffix!r}; use one of {', '.join(FORMATS)}",
        )
    if not 1 <= int(quality) <= 100:
        raise ImageWriteError(path, f"quality must be 1..100, got {quality}")
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
                _write_png16(fileobj, array, metadata.icc_profile, exif, metadata.dpi)
                return
            # TIFF: Pillow has no 16-bit colour mode
            _write_tiff16(fileobj, array, metadata.icc_profile, metadata.dpi)
            notes.append("16-bit colour TIFF written without EXIF")
            return
        im = _to_pil(array)
        kwargs: dict = {}
        if metadata.icc_profile:
            kwargs["icc_profile"] = metadata.icc_profile
        if exif:
            kwargs["exif"] = exif
        if metadata.dpi and fmt != "webp":
            kwargs["dpi"] = metadata.dpi
        if fmt == "jpg":
            kwargs.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
        elif fmt == "webp":
            kwargs.update(quality=int(quality), lossless=int(quality) >= 100, method=4)
        elif fmt == "png":
            kwargs.update(compress_level=6)
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
        if _EXIF_IFD in parsed:  # get_ifd() would otherwise add an empty sub-IFD
            sub = parsed.get_ifd(_EXIF_IFD)
            if _PIXEL_X in sub:
                sub[_PIXEL_X] = width
            if _PIXEL_Y in sub:
                sub[_PIXEL_Y] = height
        return parsed.tobytes()
    except Exception:  # noqa: BLE001 - a malformed EXIF block is passed through untouched
        return exif


def _atomic_write(path: Path, save) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(path, f"cannot create the folder ({exc.strerror or exc})") from exc
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with 0o666 lets the umask decide the permissions, as a plain open() would
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fileobj:
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
) -> None:
    """A 16-bit gray+alpha, RGB or RGBA PNG; rows use the "Up" filter, computed for all at once."""
    height, width, channels = array.shape
    color_type = {2: 4, 3: 2, 4: 6}[channels]
    rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG filter defines
    raw = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1).tobytes()
    fileobj.write(b"\x89PNG\r\n\x1a\n")
    fileobj.write(
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
    )
    if icc:
        fileobj.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi]
        fileobj.write(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        fileobj.write(_png_chunk(b"eXIf", body))
    fileobj.write(_png_chunk(b"IDAT", zlib.compress(raw, 6)))
    fileobj.write(_png_chunk(b"IEND", b""))


def _write_tiff16(
    fileobj, array: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None
) -> None:
    """A baseline little-endian, uncompressed 16-bit RGB/RGBA/gray+alpha TIFF with ICC and DPI."""
    height, width, channels = array.shape
    pixels = array.astype("<u2").tobytes()
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes

    def add(tag: int, kind: int, values: list[int] | bytes) -> None:
        if kind == 7:  # UNDEFINED (raw bytes)
            entries.append((tag, kind, len(values), bytes(values)))
            return
        fmt = {3: "<H", 4: "<I", 5: "<II"}[kind]
        count = len(values) // 2 if kind == 5 else len(values)
        if kind == 5:
            data = b"".join(
                struct.pack(fmt, values[i], values[i + 1]) for i in range(0, len(values), 2)
            )
        else:
            data = b"".join(struct.pack(fmt, v) for v in values)
        entries.append((tag, kind, count, data))

    gray = channels == 2
    add(256, 4, [width])
    add(257, 4, [height])
    add(258, 3, [16] * channels)
    add(259, 3, [1])  # no compression
    add(262, 3, [1 if gray else 2])  # BlackIsZero or RGB
    add(273, 4, [0])  # strip offset, patched below
    add(277, 3, [channels])
    add(278, 4, [height])
    add(279, 4, [len(pixels)])
    if dpi:
        add(282, 5, [round(dpi[0] * 100), 100])
        add(283, 5, [round(dpi[1] * 100), 100])
    add(284, 3, [1])
    if dpi:
        add(296, 3, [2])  # inches
    if channels in (2, 4):
        add(338, 3, [2])  # unassociated alpha
    if icc:
        add(34675, 7, icc)
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    offset = 8 + ifd_size
    extra = b""
    table = struct.pack("<H", len(entries))
    strip_entry = None
    for tag, kind, count, data in entries:
        if len(data) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHII", tag, kind, count, offset + len(extra))
            extra += data + (b"\x00" if len(data) % 2 else b"")
        if tag == 273:
            strip_entry = len(table) - 4
    table += struct.pack("<I", 0)
    pixel_offset = offset + len(extra)
    assert strip_entry is not None
    table = table[:strip_entry] + struct.pack("<I", pixel_offset) + table[strip_entry + 4 :]
    fileobj.write(b"II*\x00" + struct.pack("<I", 8) + table + extra + pixels)
