"""What the durability checker writes: every 512-byte sector starts with a tag naming the write
that produced it and the sector's own index, followed by bytes from a seeded generator. A sector
read back is thus either zeros, a version we can name, or garbage. The journal keeps an 8-byte
BLAKE2b digest per sector; sectors are compared by digest."""

import hashlib
import random
import struct

SECTOR = 512
DIGEST_SIZE = 8
MAGIC = b"MDDJ"
# magic, trial, worker, sequence number of the write, absolute sector index
TAG = struct.Struct("<4sHHQQ")


def digest(sector):
    return hashlib.blake2b(sector, digest_size=DIGEST_SIZE).digest()


ZERO_DIGEST = digest(bytes(SECTOR))


def payload(seed, trial, worker, seq, offset, length):
    """The bytes of one write: seeded random data, each sector stamped with its tag."""
    data = bytearray(random.Random(seed).randbytes(length))
    first = offset // SECTOR
    for i in range(length // SECTOR):
        TAG.pack_into(data, i * SECTOR, MAGIC, trial, worker, seq, first + i)
    return data


def digests(data):
    """The concatenated digest of every sector of `data`."""
    view = memoryview(data)
    return b"".join(digest(view[i:i + SECTOR]) for i in range(0, len(data), SECTOR))


def describe(sector):
    """A human description of a sector read back, for failure reports."""
    if not any(sector):
        return "zeros"
    magic, trial, worker, seq, index = TAG.unpack_from(sector)
    if magic != MAGIC:
        return "garbage (no tag)"
    return f"tag trial {trial} worker {worker} write {seq} sector {index}"
