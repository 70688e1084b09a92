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


SIGNATURE = b"\x9f\xff\xff\xa0"
FLASH_WINDOW = 0x40000000


def verify(img):
    """What a BMC would check in an uploaded SMT_*.bin before flashing it, written apart from
    labctl's parser: every image header (64-byte blocks with the signature at +52) with its header
    and image checksums, the image bytes inside the file, and the ATENs_FW footer with the CRC-32
    of the images' CRC-32s. Returns (version 'M.mm' or None, [problems])."""
    img = bytes(img)
    problems, crcs = [], []
    for at in range(0, len(img) - 63, 64):
        if img[at + 52:at + 56] != SIGNATURE:
            continue
        fields = img[at + 12:at + 60]
        number, base, length, _load, _exec = struct.unpack_from("<5I", fields)
        (image_sum,) = struct.unpack_from("<I", fields, 36)
        (header_sum,) = struct.unpack_from("<I", img, at + 60)
        if aten_sum(fields) != header_sum:
            problems.append(f"image {number}: header checksum")
            continue
        start = base - FLASH_WINDOW
        if start < 0 or start + length > len(img):
            problems.append(f"image {number}: bytes outside the file")
            continue
        data = img[start:start + length]
        if aten_sum(data) != image_sum:
            problems.append(f"image {number}: image checksum")
        crcs.append(zlib.crc32(data))
    if not crcs:
        problems.append("no image headers")
    at = img.rfind(b"ATENs_FW")
    if at < 0 or at + 16 > len(img):
        return None, problems + ["no ATENs_FW footer"]
    major, minor, tag = img[at + 8], img[at + 9], img[at + 10]
    (crc,) = struct.unpack_from("<I", img, at + 11)
    if tag != 0x71 or img[at + 15] != 0x17:
        problems.append("footer format")
    elif crc != zlib.crc32(b"".join(struct.pack("<I", c) for c in crcs)):
        problems.append("footer CRC")
    return f"{major}.{minor >> 4}{minor & 15}", problems
