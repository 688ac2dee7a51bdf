"""Loop count and metadata inside GIF, WEBP and APNG files.

ffmpeg's muxers for these formats write the loop count but no title, artist or
comment, so we add them to the finished file ourselves, and read all of it back
with small chunk walkers (no third-party parser):

- GIF: comment extensions (``0x21 0xFE``), one per entry (``Title: …``, ``Artist: …``, the comment);
  loop count in the NETSCAPE2.0 application extension.
- WEBP: an ``XMP `` chunk with Dublin Core title/creator/description, flagged in ``VP8X``;
  loop count in ``ANIM``.
- APNG/PNG: ``iTXt`` chunks ``Title``, ``Author``, ``Comment`` after ``IHDR``; plays in ``acTL``.

Loop counts are returned as *plays* (0 = forever), the unit of ``EncodeOptions.loop``:
a GIF without a NETSCAPE block plays once, one with count N plays N + 1 times.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DecodeError

META_KEYS = ("title", "artist", "comment")


@dataclass
class AnimationInfo:
    """What the chunks of an image file say: its format, plays (``None`` for a still), metadata and
    each frame's display time in seconds (one entry of 0.0 for a still)."""

    format: str
    plays: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)


_GIF_PREFIX = {"title": "Title: ", "artist": "Artist: "}
_PNG_KEYWORD = {"title": "Title", "artist": "Author", "comment": "Comment"}


def _clean(meta: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if k in META_KEYS and v}


# --- GIF ---------------------------------------------------------------------------------------


def _gif_blocks_start(data: bytes) -> int:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise DecodeError("not a GIF file")
    packed = data[10]
    pos = 13
    if packed & 0x80:
        pos += 3 * (2 ** ((packed & 7) + 1))
    return pos


def _gif_skip_subblocks(data: bytes, pos: int) -> int:
    while True:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size


def _gif_subblocks(payload: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(payload), 255):
        chunk = payload[i : i + 255]
        out += bytes([len(chunk)]) + chunk
    return bytes(out + b"\x00")


def _gif_walk(data: bytes):
    """Yield (label, start, end, payload) for every extension block, and (0x2C, start, end, b"")
    for every image, up to the trailer."""
    pos = _gif_blocks_start(data)
    while pos < len(data):
        intro = data[pos]
        if intro == 0x21:
            label = data[pos + 1]
            end = _gif_skip_subblocks(data, pos + 2)
            payload = bytearray()
            p = pos + 2
            while data[p]:
                payload += data[p + 1 : p + 1 + data[p]]
                p += 1 + data[p]
            yield label, pos, end, bytes(payload)
            pos = end
        elif intro == 0x2C:
            packed = data[pos + 9]
            p = pos + 10
            if packed & 0x80:  # local colour table
                p += 3 * (2 ** ((packed & 7) + 1))
            end = _gif_skip_subblocks(data, p + 1)  # LZW minimum code size, then the data
            yield 0x2C, pos, end, b""
            pos = end
        else:  # 0x3B trailer (or garbage after the last block)
            return


def gif_add_metadata(data: bytes, meta: dict[str, str | None]) -> bytes:
    meta = _clean(meta)
    if not meta:
        return data
    insert_at = _gif_blocks_start(data)
    for label, _start, end, _payload in _gif_walk(data):
        if label != 0xFF:
            break
        insert_at = end  # keep application extensions (the NETSCAPE loop block) first
    blocks = b""
    for key in META_KEYS:
        if key in meta:
            text = _GIF_PREFIX.get(key, "") + meta[key]
            blocks += b"\x21\xfe" + _gif_subblocks(text.encode("utf-8"))
    return data[:insert_at] + blocks + data[insert_at:]


def gif_read(data: bytes) -> AnimationInfo:
    plays = 1
    meta: dict[str, str] = {}
    durations: list[float] = []
    delay = 0
    for label, _start, _end, payload in _gif_walk(data):
        if label == 0xFF and payload[:11] in (b"NETSCAPE2.0", b"ANIMEXTS1.0") and len(payload) >= 14:
            count = struct.unpack("<H", payload[12:14])[0]
            plays = 0 if count == 0 else count + 1
        elif label == 0xF9 and len(payload) >= 3:
            delay = struct.unpack("<H", payload[1:3])[0]
        elif label == 0x2C:
            durations.append(_gif_delay_seconds(delay))
            delay = 0
        elif label == 0xFE:
            text = payload.decode("utf-8", errors="replace")
            for key, prefix in _GIF_PREFIX.items():
                if text.startswith(prefix):
                    meta[key] = text[len(prefix) :]
                    break
            else:
                meta["comment"] = text
    return AnimationInfo("gif", plays if len(durations) > 1 else None, meta, durations)


def _gif_delay_seconds(centiseconds: int) -> float:
    """Delays under 2/100 s are shown as 1/10 s by browsers and by ffmpeg's GIF demuxer."""
    return (centiseconds if centiseconds >= 2 else 10) / 100.0


# --- WEBP --------------------------------------------------------------------------------------

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xml": "http://www.w3.org/XML/1998/namespace",
}


def _riff_chunks(data: bytes):
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise DecodeError("not a WEBP file")
    pos = 12
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        yield tag, pos, data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def _xmp_packet(meta: dict[str, str]) -> bytes:
    for prefix, uri in _NS.items():
        if prefix != "xml":
            ET.register_namespace(prefix, uri)
    root = ET.Element(f"{{{_NS['x']}}}xmpmeta")
    rdf = ET.SubElement(root, f"{{{_NS['rdf']}}}RDF")
    desc = ET.SubElement(rdf, f"{{{_NS['rdf']}}}Description", {f"{{{_NS['rdf']}}}about": ""})
    for key, tag, container in (
        ("title", "title", "Alt"),
        ("artist", "creator", "Seq"),
        ("comment", "description", "Alt"),
    ):
        if key in meta:
            el = ET.SubElement(ET.SubElement(desc, f"{{{_NS['dc']}}}{tag}"), f"{{{_NS['rdf']}}}{container}")
            li = ET.SubElement(el, f"{{{_NS['rdf']}}}li")
            if container == "Alt":
                li.set(f"{{{_NS['xml']}}}lang", "x-default")
            li.text = meta[key]
    return ET.tostring(root, encoding="utf-8")


def _xmp_read(packet: bytes) -> dict[str, str]:
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        return {}
    meta = {}
    for key, tag in (("title", "title"), ("artist", "creator"), ("comment", "description")):
        li = root.find(f".//dc:{tag}//rdf:li", _NS)
        if li is not None and li.text:
            meta[key] = li.text
    return meta


def webp_add_metadata(data: bytes, meta: dict[str, str | None]) -> bytes:
    meta = _clean(meta)
    if not meta:
        return data
    out = bytearray(data)
    for tag, pos, _payload in _riff_chunks(data):
        if tag == b"VP8X":
            out[pos + 8] |= 0x04  # XMP flag
            break
    else:  # a simple (one-frame) WEBP: give it the extended header that can announce XMP
        width, height = _webp_simple_size(data)
        vp8x = bytes([0x04, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        out[12:12] = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    packet = _xmp_packet(meta)
    out += b"XMP " + struct.pack("<I", len(packet)) + packet + (b"\x00" if len(packet) & 1 else b"")
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def _webp_simple_size(data: bytes) -> tuple[int, int]:
    """Canvas size from the first VP8 (lossy) or VP8L (lossless) chunk of a simple WEBP."""
    for tag, _pos, payload in _riff_chunks(data):
        if tag == b"VP8 " and len(payload) >= 10:
            w, h = struct.unpack("<HH", payload[6:10])
            return w & 0x3FFF, h & 0x3FFF
        if tag == b"VP8L" and len(payload) >= 5:
            bits = int.from_bytes(payload[1:5], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise DecodeError("WEBP with neither VP8X, VP8 nor VP8L data")


def webp_read(data: bytes) -> AnimationInfo:
    plays, meta, durations = 1, {}, []
    for tag, _pos, payload in _riff_chunks(data):
        if tag == b"ANIM" and len(payload) >= 6:
            plays = struct.unpack("<H", payload[4:6])[0]
        elif tag == b"ANMF" and len(payload) >= 16:
            ms = int.from_bytes(payload[12:15], "little")
            durations.append(ms / 1000.0 if ms > 0 else 0.1)
        elif tag == b"XMP ":
            meta = _xmp_read(payload)
    return AnimationInfo("webp", plays if len(durations) > 1 else None, meta, durations or [0.0])


# --- PNG / APNG --------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes):
    if data[:8] != _PNG_SIG:
        raise DecodeError("not a PNG file")
    pos = 8
    while pos + 8 <= len(data):
        size, tag = struct.unpack(">I4s", data[pos : pos + 8])
        yield tag, pos, data[pos + 8 : pos + 8 + size]
        pos += 12 + size


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_add_metadata(data: bytes, meta: dict[str, str | None]) -> bytes:
    meta = _clean(meta)
    if not meta:
        return data
    chunks = b""
    for key in META_KEYS:
        if key in meta:
            chunks += _png_chunk(
                b"iTXt", _PNG_KEYWORD[key].encode("latin-1") + b"\x00\x00\x00\x00\x00" + meta[key].encode("utf-8")
            )
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def png_read(data: bytes) -> AnimationInfo:
    plays, meta, durations = 1, {}, []
    by_keyword = {v: k for k, v in _PNG_KEYWORD.items()}
    for tag, _pos, payload in _png_chunks(data):
        if tag == b"acTL" and len(payload) >= 8:
            plays = struct.unpack(">I", payload[4:8])[0]
        elif tag == b"fcTL" and len(payload) >= 24:
            num, den = struct.unpack(">HH", payload[20:24])
            durations.append(num / (den or 100))
        elif tag in (b"iTXt", b"tEXt"):
            keyword, _, rest = payload.partition(b"\x00")
            key = by_keyword.get(keyword.decode("latin-1"))
            if key is None:
                continue
            if tag == b"tEXt":
                meta[key] = rest.decode("latin-1")
            else:  # compression flag, method, language\0, translated keyword\0, text
                flag = rest[0]
                text = rest[2:].split(b"\x00", 2)[-1]
                meta[key] = (zlib.decompress(text) if flag else text).decode("utf-8", errors="replace")
    return AnimationInfo(
        "apng" if durations else "png", plays if len(durations) > 1 else None, meta, durations or [0.0]
    )


# --- dispatch ----------------------------------------------------------------------------------


def add_metadata(path: Path, fmt: str, meta: dict[str, str | None]) -> None:
    """Rewrite ``path`` (a finished temporary file) with ``meta`` added."""
    adders = {"gif": gif_add_metadata, "webp": webp_add_metadata, "apng": png_add_metadata}
    if not _clean(meta):
        return
    data = Path(path).read_bytes()
    Path(path).write_bytes(adders[fmt](data, meta))


def read_animated_info(path: Path) -> AnimationInfo | None:
    """Loop, metadata and frame timing of a GIF, WEBP or PNG/APNG file, from its chunks alone
    (nothing is decoded); ``None`` for other files."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        reader = gif_read
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        reader = webp_read
    elif head[:8] == _PNG_SIG:
        reader = png_read
    else:
        return None
    try:
        return reader(Path(path).read_bytes())
    except (IndexError, struct.error, zlib.error) as e:
        raise DecodeError(f"{path}: damaged {reader.__name__.split('_')[0].upper()} file") from e
