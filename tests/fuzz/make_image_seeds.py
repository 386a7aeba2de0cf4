#!/usr/bin/env python3
# tests/fuzz/make_image_seeds.py — writes the committed seed corpus of the image fuzz
# target (tests/fuzz/corpus/image): tiny images (6x4 to 9x7 pixels, a few hundred bytes
# each) in every format and variant image/decode.hpp handles, made with Pillow:
#
#     /usr/bin/python3 tests/fuzz/make_image_seeds.py tests/fuzz/corpus/image
#
# PNG: RGB, RGBA interlaced (Adam7), 16-bit gray, palette with transparency, 1-bit;
# JPEG: baseline 4:2:0, progressive gray, CMYK; BMP: 24-bit, 8-bit palette, 16-bit
# (written by hand: Pillow does not write bit fields); GIF with a transparent index and a
# frame smaller than the screen; TGA: RLE true colour, colour-mapped, right-to-left.
import os
import struct
import sys

from PIL import Image


def pattern(w, h, mode="RGB"):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 37 + y * 11) % 256, (x * 5 + y * 71) % 256, (x * y * 13 + 40) % 256)
                 for y in range(h) for x in range(w)])
    return img if mode == "RGB" else img.convert(mode)


def bmp16(path, w, h):
    """A 16-bit BI_BITFIELDS BMP (5-6-5), bottom-up, rows padded to 4 bytes."""
    row = (w * 2 + 3) // 4 * 4
    pixels = bytearray()
    for y in reversed(range(h)):
        line = bytearray()
        for x in range(w):
            r, g, b = (x * 4) % 32, (y * 9) % 64, (x + y) % 32
            line += struct.pack("<H", r << 11 | g << 5 | b)
        pixels += line + bytes(row - len(line))
    header_size = 14 + 40 + 12
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3, len(pixels), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    head = b"BM" + struct.pack("<IHHI", header_size + len(pixels), 0, 0, header_size)
    with open(path, "wb") as f:
        f.write(head + info + masks + pixels)


def main(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    pattern(7, 5).save(p("rgb.png"))
    rgba = pattern(9, 7).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((9, 7)))
    rgba.save(p("rgba_interlaced.png"), interlace=1)
    gray16 = Image.new("I;16", (6, 4))
    gray16.putdata([(i * 4099) % 65536 for i in range(24)])
    gray16.save(p("gray16.png"))
    pal = pattern(8, 6).quantize(colors=5)
    pal.info["transparency"] = 2
    pal.save(p("palette_trns.png"), transparency=2)
    pattern(8, 3).convert("1").save(p("bilevel.png"))
    pattern(9, 7).save(p("baseline420.jpg"), quality=60, subsampling=2)
    pattern(7, 6, "L").save(p("progressive_gray.jpg"), quality=70, progressive=True)
    pattern(6, 4).convert("CMYK").save(p("cmyk.jpg"), quality=80)
    pattern(7, 5).save(p("rgb24.bmp"))
    pattern(6, 5).quantize(colors=4).save(p("palette8.bmp"))
    bmp16(p("rgb565.bmp"), 5, 3)
    gif = pattern(8, 6).quantize(colors=6)
    gif.save(p("transparent.gif"), transparency=1)
    # A GIF whose only frame covers part of the screen (written by hand around Pillow's frame).
    frame = pattern(4, 3).quantize(colors=4)
    frame.save(p("small_frame.gif"))
    with open(p("small_frame.gif"), "rb") as f:
        data = bytearray(f.read())
    data[6:10] = struct.pack("<HH", 7, 5)  # logical screen 7x5
    at = data.index(b"\x2c")              # image descriptor: left 2, top 1
    data[at + 1:at + 5] = struct.pack("<HH", 2, 1)
    with open(p("small_frame.gif"), "wb") as f:
        f.write(bytes(data))
    pattern(7, 4).save(p("rle.tga"), compression="tga_rle")
    pattern(6, 5).quantize(colors=8).save(p("colormap.tga"))
    pattern(5, 3).save(p("mirrored.tga"), orientation=1)
    # Pillow writes TGA bottom-up (orientation -1) by default; orientation=1 means top-down.
    with open(p("mirrored.tga"), "rb") as f:
        data = bytearray(f.read())
    data[17] |= 0x10  # descriptor bit 4: right-to-left
    with open(p("mirrored.tga"), "wb") as f:
        f.write(bytes(data))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_image_seeds.py OUT_DIR")
    main(sys.argv[1])
