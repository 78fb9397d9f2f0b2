#!/usr/bin/env python3
"""Splits what a client sent to the daemon (socat -r) into the seeds of each fuzz target.

Usage: split_session.py RECORDING NAME CORPUS_DIR

  handshake/NAME   client flags and every option up to the one that entered transmission
  request/NAME     the transmission part: whole request frames only, big WRITE frames left out
  connection/NAME  the two together, as one connection sends them
Seeds stay small (AFL works best on small inputs): transmission is cut at 16 KiB of whole frames.
"""
import os
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
OPT_EXPORT_NAME, OPT_GO = 1, 7
NBD_CMD_WRITE = 1
MAX_TRANSMISSION = 16 * 1024
MAX_WRITE_PAYLOAD = 4 * 1024


def handshake_length(data: bytes) -> int:
    """Bytes of the handshake phase: flags, then options until GO or EXPORT_NAME is followed by a request."""
    pos = 4
    while pos + 16 <= len(data):
        magic, option, length = struct.unpack_from(">QII", data, pos)
        if magic != IHAVEOPT:
            break
        pos += 16 + length
        if option == OPT_EXPORT_NAME:
            break
        if option == OPT_GO and pos + 4 <= len(data) and struct.unpack_from(">I", data, pos)[0] == REQUEST_MAGIC:
            break
    return min(pos, len(data))


def small_transmission(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos + 28 <= len(data) and len(out) < MAX_TRANSMISSION:
        magic, _flags, command, _cookie, _offset, length = struct.unpack_from(">IHHQQI", data, pos)
        if magic != REQUEST_MAGIC:
            break
        frame = 28 + (length if command == NBD_CMD_WRITE else 0)
        if command != NBD_CMD_WRITE or length <= MAX_WRITE_PAYLOAD:
            out += data[pos:pos + frame]
        pos += frame
    return bytes(out)


def main() -> None:
    recording, name, corpus = sys.argv[1:4]
    data = open(recording, "rb").read()
    split = handshake_length(data)
    handshake, transmission = data[:split], small_transmission(data[split:])
    parts = {"handshake": handshake, "request": transmission, "connection": handshake + transmission}
    for target, content in parts.items():
        if not content:
            continue
        os.makedirs(os.path.join(corpus, target), exist_ok=True)
        with open(os.path.join(corpus, target, name), "wb") as f:
            f.write(content)
        print(f"{target}/{name}: {len(content)} bytes")


if __name__ == "__main__":
    main()
