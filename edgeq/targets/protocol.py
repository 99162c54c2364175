"""edgeq's serial protocol between the host and the firmware harness (templates/firmware/harness.c.j2).

A frame: SYNC (0xA5 0x5A), payload length (u32 LE), payload, CRC-32 (zlib's, u32 LE) of the length
bytes and the payload. The first payload byte is the command; a reply carries the command | 0x80, or
0xEE and an error code. Garbage between frames is skipped by both sides; a damaged frame gets an
error reply (device) or a retry (host).

Commands:
- HELLO: reply = version u8, layers u16, input bytes u32, output bytes u32, clock Hz u32,
  model hash (first 8 bytes of the model's sha256), board name (ASCII).
- INFER input: reply = status u8, cycles u64, output bytes.
- PROFILE runs(u16): reply = status u8, cycles u64 of the last run, cycles u64 per layer.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 1
SYNC = (0xA5, 0x5A)
CMD_HELLO, CMD_INFER, CMD_PROFILE = 0x01, 0x02, 0x03
REPLY_ERROR = 0xEE
ERR_CRC, ERR_LENGTH, ERR_COMMAND, ERR_SIZE = 1, 2, 3, 4
ERRORS = {ERR_CRC: "the device saw a corrupt frame (CRC mismatch)", ERR_LENGTH: "frame length out of range",
          ERR_COMMAND: "unknown command", ERR_SIZE: "payload of the wrong size for the command"}


def frame(payload: bytes) -> bytes:
    length = struct.pack("<I", len(payload))
    return bytes(SYNC) + length + payload + struct.pack("<I", zlib.crc32(length + payload))


@dataclass
class Hello:
    version: int
    layers: int
    input_bytes: int
    output_bytes: int
    clock_hz: int
    model_hash: str
    board: str

    @classmethod
    def parse(cls, data: bytes) -> "Hello":
        version, layers, ib, ob, clock = struct.unpack_from("<BHIII", data)
        return cls(version, layers, ib, ob, clock, data[15:23].hex(), data[23:].decode(errors="replace"))
