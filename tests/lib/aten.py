"""A small Supermicro ATEN WPCM450 firmware image (the SMT_*.bin layout of
plugins/supermicro_bmc/aten_image.h), built from the published layout for the tests: boot loader
text, two images each followed by its 64-byte header, and the footer "ATENs_FW" MAJOR MINOR(BCD)
0x71 CRC 0x17; 64 KiB in all. No vendor bytes."""
import struct
import zlib


def aten_sum(data):
    """ATEN's header/image checksum: from 0xFFFFFFFF, subtract each byte shifted by 8*(i mod 4),
    one more on every wrap below zero."""
    s = 0xFFFFFFFF
    for i, b in enumerate(data):
        v = b << (8 * (i % 4))
        s = (s - v - 1) & 0xFFFFFFFF if v > s else s - v
    return s


def build(major=3, minor_bcd=0x13):
    """(bytearray image, offset of the first image's payload)."""
    img = bytearray(b"\xff" * 0x10000)
    boot = b"WPCM450 Boot Loader [ Version:1.0.14 ]\0"
    img[0x40:0x40 + len(boot)] = boot
    crcs, at, header = [], 0x400, 0
    for number, name, size in ((2, b"1stFS", 1500), (3, b"kernel", 700)):
        data = bytes((i * 7 + number) & 0xFF for i in range(size))
        img[at:at + size] = data
        header = (at + size + 64 + 13 + 0x3FF) // 0x400 * 0x400 - 64
        fields = struct.pack("<5I16sI4sI", number, 0x40000000 + at, size, 0xD00000, 0xD00000,
                             name, aten_sum(data), b"\x9f\xff\xff\xa0", 0x8)
        img[header:header + 64] = b"\xff" * 12 + fields + struct.pack("<I", aten_sum(fields))
        crcs.append(zlib.crc32(data))
        at = header + 64
    crc = zlib.crc32(b"".join(struct.pack("<I", c) for c in crcs))
    img[header - 13:header + 3] = (b"ATENs_FW" + bytes([major, minor_bcd, 0x71]) +
                                   struct.pack("<I", crc) + b"\x17")
    return img, 0x400
