#!/usr/bin/python3
"""Write the test images of the preprocessing/decoder parity test into a folder.

    /usr/bin/python3 tests/python/make_test_images.py OUTDIR

Nothing binary is committed: every image is generated here, deterministically, with
numpy + PIL where PIL can write the variant, and by hand (struct + zlib) where it cannot
(16-bit PNG of every colour type, interlaced PNG, 2-bit gray, 4/16-bit BMP, top-down BMP,
16-bit TGA, GIF whose first frame is smaller than the screen).

make_images(outdir, astronaut) returns three lists:
  inputs   [(name, path)]                 8-bit RGB PNGs that feed the preprocessing chains
  decodes  [(name, path, exact)]          files whose decode must equal PIL's convert("RGB")
                                          (exact=False: JPEG, compared with a tolerance)
  broken   [(name, path, expect)]         files the decoder must refuse; `expect` is a
                                          word the error message must contain
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


# ---------------------------------------------------------------------------------------
# Synthetic pictures
# ---------------------------------------------------------------------------------------

def noise(h, w, seed, channels=3):
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def gradient(h, w):
    """Every byte value 0..255 appears in every channel; smooth and sharp edges."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    b = ((x + y) % 256).astype(np.uint8)
    img = np.stack([r, g, b], axis=-1)
    img[h // 3: h // 3 + 3, :, :] = 255  # a sharp white bar
    img[:, w // 2, :] = 0                # a sharp black line
    return img


def smooth(h, w, seed):
    """A photo-like image (for JPEG): low-frequency colour blobs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.28)]
            out[..., c] += np.sin(fx * 6.28 * x + fy * 6.28 * y + ph)
    out = (out - out.min()) / (out.max() - out.min()) * 255
    return out.round().astype(np.uint8)


# ---------------------------------------------------------------------------------------
# Hand-written encoders for what PIL cannot write
# ---------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples: (h, w*channels) integer array -> list of raw scanlines (no filter byte)."""
    rows = []
    for row in samples:
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:  # 1, 2, 4: pack MSB first
            per = 8 // depth
            pad = (-len(row)) % per
            r = np.concatenate([row, np.zeros(pad, dtype=row.dtype)]).astype(np.uint8)
            r = r.reshape(-1, per)
            b = np.zeros(len(r), dtype=np.uint8)
            for i in range(per):
                b |= (r[:, i] << (8 - depth * (i + 1))).astype(np.uint8)
            rows.append(b.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, pixels, depth, color_type, palette=None, trns=None, interlace=False):
    """pixels: (h, w) or (h, w, c) array of samples (palette indices for color_type 3)."""
    px = pixels if pixels.ndim == 3 else pixels[..., None]
    h, w, c = px.shape
    raw = b""
    if not interlace:
        for row in pack_rows(px.reshape(h, w * c), depth):
            raw += b"\x00" + row
    else:
        for (x0, y0, dx, dy) in ADAM7:
            sub = px[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            sh, sw = sub.shape[:2]
            for row in pack_rows(sub.reshape(sh, sw * c), depth):
                raw += b"\x00" + row
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).ravel()))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    out += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def write_bmp(path, pixels_bgr_rows, width, height, bpp, palette=None, compression=0, masks=None, top_down=False):
    """pixels_bgr_rows: list of `height` byte strings, already in file order and unpadded."""
    stride = (width * bpp + 31) // 32 * 4
    data = b"".join(r + b"\x00" * (stride - len(r)) for r in pixels_bgr_rows)
    pal = b""
    if palette is not None:
        pal = b"".join(bytes([b, g, r, 0]) for (r, g, b) in palette)
    extra = b"".join(struct.pack("<I", m) for m in masks) if masks else b""
    offset = 14 + 40 + len(extra) + len(pal)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bpp, compression,
                       len(data), 2835, 2835, len(palette) if palette else 0, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    with open(path, "wb") as f:
        f.write(head + info + extra + pal + data)


def write_tga16(path, rgb5, top_down=False):
    """rgb5: (h, w, 3) values 0..31 -> 16-bit TGA (A1R5G5B5)."""
    h, w, _ = rgb5.shape
    v = (1 << 15) | (rgb5[..., 0].astype(np.uint16) << 10) | (rgb5[..., 1].astype(np.uint16) << 5) | rgb5[..., 2].astype(np.uint16)
    rows = v if top_down else v[::-1]
    head = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 16, (0x20 if top_down else 0) | 1)
    with open(path, "wb") as f:
        f.write(head + rows.astype("<u2").tobytes())


def lzw_encode(indices, min_code_size):
    """GIF LZW: variable-width codes (LSB first), clear code at start and when the table is full."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    out_bits, nbits = 0, 0
    out = bytearray()
    size = min_code_size + 1

    def emit(code, width):
        nonlocal out_bits, nbits
        out_bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(out_bits & 0xFF)
            out_bits >>= 8
            nbits -= 8

    table = {(i,): i for i in range(clear)}
    nxt = eoi + 1
    emit(clear, size)
    cur = ()
    for px in indices:
        cand = cur + (int(px),)
        if cand in table:
            cur = cand
            continue
        emit(table[cur], size)
        if nxt < 4096:
            table[cand] = nxt
            nxt += 1
            if nxt > (1 << size) and size < 12:
                size += 1
        else:
            emit(clear, size)
            table = {(i,): i for i in range(clear)}
            nxt = eoi + 1
            size = min_code_size + 1
        cur = (int(px),)
    if cur:
        emit(table[cur], size)
    emit(eoi, size)
    if nbits:
        out.append(out_bits & 0xFF)
    return bytes(out)


def write_gif(path, screen_w, screen_h, background, global_palette, frame, left, top, transparent=None,
              local_palette=None):
    """One-frame GIF; frame: (h, w) palette indices placed at (left, top) on the screen."""
    def table_bits(pal):
        n = len(pal)
        bits = max(1, int(np.ceil(np.log2(n))))
        return bits, bytes(np.asarray(pal, dtype=np.uint8).ravel()) + b"\x00" * (3 * ((1 << bits) - n))

    out = b"GIF89a"
    gbits, gtab = table_bits(global_palette)
    out += struct.pack("<HHBBB", screen_w, screen_h, 0x80 | 0x70 | (gbits - 1), background, 0) + gtab
    if transparent is not None:
        out += b"\x21\xF9\x04" + struct.pack("<BHB", 1, 0, transparent) + b"\x00"
    fh, fw = frame.shape
    flags = 0
    ltab = b""
    if local_palette is not None:
        lbits, ltab = table_bits(local_palette)
        flags = 0x80 | (lbits - 1)
    out += b"\x2C" + struct.pack("<HHHHB", left, top, fw, fh, flags) + ltab
    mcs = max(2, gbits if local_palette is None else lbits)
    data = lzw_encode(frame.ravel(), mcs)
    out += bytes([mcs])
    for i in range(0, len(data), 255):
        blk = data[i:i + 255]
        out += bytes([len(blk)]) + blk
    out += b"\x00\x3B"
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------------------------------

def make_images(outdir, astronaut):
    os.makedirs(outdir, exist_ok=True)
    P = lambda name: os.path.join(outdir, name)
    inputs, decodes, broken = [], [], []

    def save(img, name, **kw):
        img.save(P(name), **kw)
        return P(name)

    # ---- 8-bit RGB PNG inputs of the preprocessing chains --------------------------------
    astro = Image.open(astronaut).convert("RGB")
    inputs.append(("astronaut_512x512", save(astro, "astronaut.png")))
    for (h, w, kind, seed) in [(218, 178, "noise", 1), (178, 218, "gradient", 0), (23, 37, "noise", 2),
                               (301, 257, "noise", 3), (250, 250, "gradient", 0), (100, 90, "noise", 4),
                               (119, 121, "noise", 5), (129, 127, "gradient", 0), (1, 1, "noise", 6),
                               (1, 300, "noise", 7), (300, 1, "noise", 8), (240, 200, "noise", 9),
                               (1000, 700, "noise", 10), (64, 256, "gradient", 0)]:
        arr = noise(h, w, seed) if kind == "noise" else gradient(h, w)
        name = f"{kind}_{h}x{w}"
        inputs.append((name, save(Image.fromarray(arr, "RGB"), name + ".png")))
    # CelebA-like crop of the astronaut (178 wide, 218 high) and a MORPH-like 200x240.
    inputs.append(("astronaut_celeba_218x178", save(astro.crop((150, 100, 328, 318)), "astro_celeba.png")))
    inputs.append(("astronaut_morph_240x200", save(astro.crop((100, 60, 300, 300)), "astro_morph.png")))

    # ---- PNG variants --------------------------------------------------------------------
    rgb = noise(29, 31, 11)
    rgba = noise(29, 31, 12, 4)
    gray = noise(29, 31, 13, 1)
    decodes.append(("png_rgb8", save(Image.fromarray(rgb, "RGB"), "png_rgb8.png"), True))
    decodes.append(("png_rgba8", save(Image.fromarray(rgba, "RGBA"), "png_rgba8.png"), True))
    decodes.append(("png_gray8", save(Image.fromarray(gray, "L"), "png_gray8.png"), True))
    decodes.append(("png_la8", save(Image.fromarray(rgba[..., :2].copy(), "LA"), "png_la8.png"), True))
    pal_img = Image.fromarray(rgb, "RGB").quantize(colors=50)
    decodes.append(("png_palette8", save(pal_img, "png_palette8.png"), True))
    decodes.append(("png_palette_trns", save(pal_img, "png_palette_trns.png", transparency=3), True))
    decodes.append(("png_gray1", save(Image.fromarray(gray > 128).convert("1"), "png_gray1.png"), True))
    write_png(P("png_gray2.png"), gray >> 6, 2, 0)
    decodes.append(("png_gray2", P("png_gray2.png"), True))
    write_png(P("png_gray4.png"), gray >> 4, 4, 0)
    decodes.append(("png_gray4", P("png_gray4.png"), True))
    write_png(P("png_palette4.png"), gray >> 4, 4, 3, palette=noise(16, 3, 14, 1))
    decodes.append(("png_palette4", P("png_palette4.png"), True))
    write_png(P("png_gray8_trns.png"), gray, 8, 0, trns=struct.pack(">H", int(gray[0, 0])))
    decodes.append(("png_gray8_trns", P("png_gray8_trns.png"), True))
    write_png(P("png_rgb8_trns.png"), rgb, 8, 2, trns=struct.pack(">HHH", *[int(v) for v in rgb[0, 0]]))
    decodes.append(("png_rgb8_trns", P("png_rgb8_trns.png"), True))
    write_png(P("png_rgb8_interlaced.png"), noise(37, 41, 15), 8, 2, interlace=True)
    decodes.append(("png_rgb8_interlaced", P("png_rgb8_interlaced.png"), True))
    write_png(P("png_gray4_interlaced.png"), noise(13, 11, 16, 1) >> 4, 4, 0, interlace=True)
    decodes.append(("png_gray4_interlaced", P("png_gray4_interlaced.png"), True))
    rng = np.random.default_rng(17)
    s16 = rng.integers(0, 65536, size=(29, 31, 4)).astype(np.uint16)
    s16[0, :4, 0] = [0, 255, 256, 65535]
    write_png(P("png_rgb16.png"), s16[..., :3], 16, 2)
    decodes.append(("png_rgb16", P("png_rgb16.png"), True))
    write_png(P("png_rgba16.png"), s16, 16, 6)
    decodes.append(("png_rgba16", P("png_rgba16.png"), True))
    write_png(P("png_la16.png"), s16[..., :2], 16, 4)
    decodes.append(("png_la16", P("png_la16.png"), True))
    g16 = s16[..., 0].copy()
    g16[1] = np.arange(31) * 20  # many values <= 255, which PIL keeps
    write_png(P("png_gray16.png"), g16, 16, 0)
    decodes.append(("png_gray16", P("png_gray16.png"), True))

    # ---- BMP -----------------------------------------------------------------------------
    brgb = noise(17, 37, 18)  # odd width: row padding
    decodes.append(("bmp_rgb24", save(Image.fromarray(brgb, "RGB"), "bmp_rgb24.bmp"), True))
    decodes.append(("bmp_gray8", save(Image.fromarray(brgb[..., 0].copy(), "L"), "bmp_gray8.bmp"), True))
    decodes.append(("bmp_palette8", save(Image.fromarray(brgb, "RGB").quantize(colors=200), "bmp_palette8.bmp"), True))
    decodes.append(("bmp_1bit", save(Image.fromarray(brgb[..., 0] > 100).convert("1"), "bmp_1bit.bmp"), True))
    decodes.append(("bmp_rgba32", save(Image.fromarray(noise(17, 37, 19, 4), "RGBA"), "bmp_rgba32.bmp"), True))
    rows = [bytes(brgb[y, :, ::-1].ravel()) for y in range(16, -1, -1)]
    write_bmp(P("bmp_topdown24.bmp"), rows[::-1], 37, 17, 24, top_down=True)
    decodes.append(("bmp_topdown24", P("bmp_topdown24.bmp"), True))
    idx4 = noise(17, 37, 20, 1) >> 4
    pal16 = [tuple(int(v) for v in c) for c in noise(16, 1, 21).reshape(16, 3)]
    rows4 = []
    for y in range(16, -1, -1):
        r = list(idx4[y]) + [0]
        rows4.append(bytes((r[i] << 4) | r[i + 1] for i in range(0, 37, 2)))
    write_bmp(P("bmp_4bit.bmp"), rows4, 37, 17, 4, palette=pal16)
    decodes.append(("bmp_4bit", P("bmp_4bit.bmp"), True))
    v5 = noise(17, 37, 22) >> 3
    px555 = (v5[..., 0].astype(np.uint16) << 10) | (v5[..., 1].astype(np.uint16) << 5) | v5[..., 2]
    write_bmp(P("bmp_16_555.bmp"), [px555[y].astype("<u2").tobytes() for y in range(16, -1, -1)], 37, 17, 16)
    decodes.append(("bmp_16_555", P("bmp_16_555.bmp"), True))
    g6 = noise(17, 37, 23, 1) >> 2
    px565 = (v5[..., 0].astype(np.uint16) << 11) | (g6.astype(np.uint16) << 5) | v5[..., 2]
    write_bmp(P("bmp_16_565.bmp"), [px565[y].astype("<u2").tobytes() for y in range(16, -1, -1)], 37, 17, 16,
              compression=3, masks=[0xF800, 0x07E0, 0x001F])
    decodes.append(("bmp_16_565", P("bmp_16_565.bmp"), True))

    # ---- TGA -----------------------------------------------------------------------------
    trgb = noise(19, 23, 24)
    decodes.append(("tga_rgb24", save(Image.fromarray(trgb, "RGB"), "tga_rgb24.tga"), True))
    decodes.append(("tga_rgba32", save(Image.fromarray(noise(19, 23, 25, 4), "RGBA"), "tga_rgba32.tga"), True))
    decodes.append(("tga_gray8", save(Image.fromarray(trgb[..., 1].copy(), "L"), "tga_gray8.tga"), True))
    decodes.append(("tga_palette8", save(Image.fromarray(trgb, "RGB").quantize(colors=64), "tga_palette8.tga"), True))
    # RLE: runs and raw packets (a flat band gives long runs)
    rle_src = trgb.copy()
    rle_src[5:12] = [10, 200, 30]
    decodes.append(("tga_rgb24_rle", save(Image.fromarray(rle_src, "RGB"), "tga_rgb24_rle.tga", compression="tga_rle"), True))
    decodes.append(("tga_gray8_rle", save(Image.fromarray(rle_src[..., 0].copy(), "L"), "tga_gray8_rle.tga", compression="tga_rle"), True))
    decodes.append(("tga_rgb24_topdown", save(Image.fromarray(trgb, "RGB"), "tga_rgb24_topdown.tga", orientation=1), True))
    write_tga16(P("tga_16.tga"), noise(19, 23, 26) >> 3)
    decodes.append(("tga_16", P("tga_16.tga"), True))

    # ---- GIF -----------------------------------------------------------------------------
    gsrc = Image.fromarray(noise(21, 27, 27), "RGB").quantize(colors=100)
    decodes.append(("gif_palette", save(gsrc, "gif_palette.gif"), True))
    decodes.append(("gif_transparent", save(gsrc, "gif_transparent.gif", transparency=5), True))
    decodes.append(("gif_gray", save(Image.fromarray(noise(21, 27, 28, 1), "L"), "gif_gray.gif"), True))
    pal = [tuple(int(v) for v in c) for c in noise(16, 1, 29).reshape(16, 3)]
    frame = noise(9, 11, 30, 1) % 16
    frame[0, 0] = 7
    write_gif(P("gif_subframe.gif"), 20, 15, 3, pal, frame, left=4, top=2)
    decodes.append(("gif_subframe", P("gif_subframe.gif"), True))
    write_gif(P("gif_subframe_bg0_transparent.gif"), 20, 15, 0, pal, frame, left=4, top=2, transparent=7)
    decodes.append(("gif_subframe_bg0_transparent", P("gif_subframe_bg0_transparent.gif"), True))
    write_gif(P("gif_localpalette.gif"), 11, 9, 2, pal, frame, left=0, top=0, transparent=7,
              local_palette=[tuple(int(v) for v in c) for c in noise(16, 1, 31).reshape(16, 3)])
    decodes.append(("gif_localpalette", P("gif_localpalette.gif"), True))

    # ---- JPEG (stb vs libjpeg: compared with a tolerance) ---------------------------------
    photo = smooth(96, 120, 32)
    decodes.append(("jpeg_baseline_420", save(Image.fromarray(photo), "jpeg_baseline_420.jpg", quality=90), False))
    decodes.append(("jpeg_baseline_444", save(Image.fromarray(photo), "jpeg_baseline_444.jpg", quality=95, subsampling=0), False))
    decodes.append(("jpeg_progressive", save(Image.fromarray(photo), "jpeg_progressive.jpg", quality=90, progressive=True), False))
    decodes.append(("jpeg_gray", save(Image.fromarray(photo[..., 1].copy(), "L"), "jpeg_gray.jpg", quality=90), False))
    decodes.append(("jpeg_odd_size_422", save(Image.fromarray(smooth(37, 53, 33)), "jpeg_odd_422.jpg", quality=90, subsampling=1), False))
    decodes.append(("jpeg_odd_size_420", save(Image.fromarray(smooth(37, 53, 34)), "jpeg_odd_420.jpg", quality=90), False))
    decodes.append(("jpeg_progressive_odd_420", save(Image.fromarray(smooth(37, 53, 34)), "jpeg_prog_odd_420.jpg", quality=90, progressive=True), False))
    cmyk = np.concatenate([photo[..., :3], 255 - photo[..., :1]], axis=-1)
    decodes.append(("jpeg_cmyk", save(Image.fromarray(cmyk, "CMYK"), "jpeg_cmyk.jpg", quality=95), False))
    decodes.append(("jpeg_astronaut", save(astro, "jpeg_astronaut.jpg", quality=92), False))

    # ---- Files that must be refused ------------------------------------------------------
    def write(name, data):
        with open(P(name), "wb") as f:
            f.write(data)
        return P(name)

    jpg = open(P("jpeg_baseline_420.jpg"), "rb").read()
    prog = open(P("jpeg_progressive.jpg"), "rb").read()
    png = open(P("png_rgb8.png"), "rb").read()
    gif = open(P("gif_palette.gif"), "rb").read()
    bmp = open(P("bmp_rgb24.bmp"), "rb").read()
    tga = open(P("tga_rgb24.tga"), "rb").read()
    tga_rle = open(P("tga_rgb24_rle.tga"), "rb").read()
    broken.append(("empty", write("empty.jpg", b""), "empty"))
    broken.append(("jpeg_truncated_half", write("trunc_half.jpg", jpg[: len(jpg) // 2]), "truncated"))
    broken.append(("jpeg_truncated_no_eoi", write("trunc_no_eoi.jpg", jpg[:-2]), "truncated"))
    broken.append(("jpeg_truncated_header", write("trunc_header.jpg", jpg[:40]), "truncated"))
    broken.append(("jpeg_progressive_truncated", write("trunc_prog.jpg", prog[: len(prog) * 2 // 3]), "truncated"))
    broken.append(("png_truncated", write("trunc.png", png[: len(png) - 30]), "truncated"))
    broken.append(("png_no_iend", write("no_iend.png", png[:-12]), "truncated"))
    broken.append(("gif_truncated", write("trunc.gif", gif[: len(gif) // 2]), "truncated"))
    broken.append(("bmp_truncated", write("trunc.bmp", bmp[:-10]), "truncated"))
    broken.append(("tga_truncated", write("trunc.tga", tga[:-26 - 10]), "truncated"))  # PIL adds a 26-byte TGA 2.0 footer
    broken.append(("tga_rle_truncated", write("trunc_rle.tga", tga_rle[: len(tga_rle) // 2]), "truncated"))
    broken.append(("text_named_jpg", write("text.jpg", b"Hello, this is not an image.\n" * 4), "not a supported image"))
    broken.append(("webp_magic", write("fake.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32), "WebP"))
    # 100000 x 100000 BMP header, no pixels
    huge = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 100000, 100000, 1, 24, 0, 0, 0, 0, 0, 0)
    broken.append(("bmp_absurd_size", write("huge.bmp", huge), "megapixels"))
    # 20000 x 20000 PNG (400 MP, under the per-side limit), IDAT absent
    hpng = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + png_chunk(b"IEND", b"")
    broken.append(("png_absurd_size", write("huge.png", hpng), "megapixels"))
    return inputs, decodes, broken


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    astronaut = os.path.join(here, "..", "..", "data", "astronaut.png")
    inputs, decodes, broken = make_images(sys.argv[1], astronaut)
    print(f"{len(inputs)} chain inputs, {len(decodes)} decoder cases, {len(broken)} broken files in {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
