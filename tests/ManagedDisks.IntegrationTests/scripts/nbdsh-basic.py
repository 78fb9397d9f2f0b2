# Data path of one export through libnbd: run inside nbdsh with URI set, e.g.
#   URI='nbd+unix:///disk0?socket=/path/nbd.sock' nbdsh -c "exec(open('nbdsh-basic.py').read())"
# The export must be a fresh (all-hole) disk of at least 32 MiB; it is written from 0 to 24 MiB.
# When DISK_FILE names the (encrypted) backing file, PAYLOAD_OFFSET must say where its payload
# starts: then the allocation is checked too (SEEK_DATA/SEEK_HOLE), and that what is stored is
# ciphertext, not the plaintext written.
import errno
import os

import nbd

K = 1024
M = 1024 * 1024

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(os.environ['URI'])

size = h.get_size()
assert size >= 32 * M, f"export too small for this script: {size}"
assert h.get_structured_replies_negotiated(), "structured replies were not negotiated"
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation was not negotiated"
for name in ['flush', 'fua', 'trim', 'zero', 'fast_zero', 'df', 'multi_conn', 'cache']:
    assert getattr(h, 'can_' + name)(), f"can_{name} is false"
assert not h.is_read_only(), "export is read-only"
# encrypted disks: 512-byte addressing, 4K sectors (read-modify-written below that), 32 MiB payloads
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512, h.get_block_size(nbd.SIZE_MINIMUM)
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096, h.get_block_size(nbd.SIZE_PREFERRED)
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * M, h.get_block_size(nbd.SIZE_MAXIMUM)
SECTOR = h.get_block_size(nbd.SIZE_PREFERRED)

disk_file = os.environ.get('DISK_FILE')
if disk_file:
    payload_offset = int(os.environ['PAYLOAD_OFFSET'])
    assert payload_offset > 0 and payload_offset % SECTOR == 0, payload_offset
    assert os.stat(disk_file).st_size == payload_offset + size, \
        f"backing file is {os.stat(disk_file).st_size} bytes, expected {payload_offset} + {size}"


def file_has_data(offset, length):
    """True if any byte of the disk range [offset, offset+length) is allocated in the backing file."""
    offset += payload_offset
    fd = os.open(disk_file, os.O_RDONLY)
    try:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return False
            raise
        return data < offset + length
    finally:
        os.close(fd)


def stored(offset, length):
    """The bytes the backing file holds for the disk range [offset, offset+length)."""
    with open(disk_file, 'rb') as f:
        f.seek(payload_offset + offset)
        return f.read(length)


def assert_ciphertext(offset, plain):
    """The backing file holds neither the plaintext nor zeros for data written at offset."""
    raw = stored(offset, len(plain))
    assert len(raw) == len(plain), f"backing file too short at {offset}"
    for i in range(0, len(plain), SECTOR):
        assert raw[i:i + SECTOR] != plain[i:i + SECTOR], f"sector at {offset + i} is stored as plaintext"
        assert raw[i:i + SECTOR] != bytes(SECTOR), f"sector at {offset + i} is stored as zeros, not ciphertext"
    # nor anywhere else in the file (a write to the wrong place, or a plaintext copy)
    with open(disk_file, 'rb') as f:
        whole = f.read()
    for i in range(0, len(plain), 64 * SECTOR):
        assert plain[i:i + 64] not in whole, f"plaintext written at {offset + i} appears in the backing file"


def extents(count, offset, flags=0):
    """block_status as a list of (length, flags) for base:allocation."""
    seen = []

    def cb(metacontext, off, entries, err):
        assert metacontext == nbd.CONTEXT_BASE_ALLOCATION, metacontext
        assert off == offset, (off, offset)
        seen.append(list(zip(entries[0::2], entries[1::2])))
        return 0

    h.block_status(count, offset, cb, flags)
    assert len(seen) == 1, f"expected one base:allocation reply, got {len(seen)}"
    result = seen[0]
    assert len(result) >= 1, "no extents"
    assert all(length > 0 for length, _ in result), f"zero-length extent in {result}"
    if flags & nbd.CMD_FLAG_REQ_ONE:
        assert len(result) == 1, f"REQ_ONE returned {len(result)} extents: {result}"
        assert result[0][0] <= count, f"REQ_ONE extent longer than the request: {result}"
    else:
        # The spec lets a server describe less than asked; this one describes small ranges in full.
        covered = sum(length for length, _ in result)
        assert covered >= count, f"extents {result} do not cover {count} bytes at {offset}"
        assert sum(length for length, _ in result[:-1]) < count, f"extents {result} run past the request before the last one"
    return result


def flags_at(offset, count=4096):
    """base:allocation flags of the first extent at offset, asked with REQ_ONE."""
    return extents(count, offset, nbd.CMD_FLAG_REQ_ONE)[0][1]


def read_chunks(count, offset, flags=0):
    """pread_structured, returning the data and the list of (offset, length, status)."""
    chunks = []

    def cb(subbuf, off, status, err):
        chunks.append((off, len(subbuf), status))
        if status == nbd.READ_HOLE:
            assert bytes(subbuf) == bytes(len(subbuf)), "a hole chunk is not all zeros"
        return 0

    data = h.pread_structured(count, offset, cb, flags)
    assert len(data) == count
    assert chunks, "no chunks"
    ordered = sorted(chunks)
    position = offset
    for off, length, status in ordered:
        assert status in (nbd.READ_DATA, nbd.READ_HOLE), f"unexpected chunk status {status}"
        assert length > 0, f"empty chunk in {chunks}"
        assert off == position, f"chunks overlap or leave a gap: {ordered}"
        position += length
    assert position == offset + count, f"chunks do not cover the read: {ordered}"
    return bytes(data), chunks


def expect_error(expected, what, fn, *args):
    allowed = (expected,) if isinstance(expected, str) else expected
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errno in allowed, f"{what}: expected {'/'.join(allowed)}, got {e.errno} ({e.string})"
        return
    raise AssertionError(f"{what}: succeeded, expected {'/'.join(allowed)}")


ENOTSUP = ('ENOTSUP', 'EOPNOTSUPP')


def alive():
    """The connection still carries requests after an error."""
    assert not h.aio_is_dead() and h.aio_is_ready(), "connection is not ready"
    assert h.pread(512, 0) == first[:512], "connection does not read correctly any more"


HOLE_ZERO = nbd.STATE_HOLE | nbd.STATE_ZERO

# --- a fresh disk is one hole ------------------------------------------------------------
assert flags_at(0, M) == HOLE_ZERO, "a fresh disk is not reported as a hole"
assert h.pread(4096, 0) == bytes(4096), "a fresh disk does not read as zeros"

# --- pwrite / pread round trip (0..1M), sub-sector I/O (512-aligned, not 4K-aligned) -----
first = os.urandom(M)
h.pwrite(first, 0)
assert h.pread(M, 0) == first, "pread after pwrite differs"
# 3584..5120 lies across the sector boundary at 4096: two read-modify-writes
patch = os.urandom(1536)
h.pwrite(patch, 3584)
expected = bytearray(first)
expected[3584:5120] = patch
# one 512-byte block in the middle of a sector
h.pwrite(b'\xa5' * 512, 8192 + 1024)
expected[9216:9728] = b'\xa5' * 512
first = bytes(expected)
assert h.pread(512, 3584) == patch[:512], "512-byte read inside a sector differs"
assert h.pread(3072, 2560) == first[2560:5632], "sub-sector read across a sector boundary differs"
assert h.pread(1024, 8192 + 512) == first[8704:9728], "sub-sector write did not keep the rest of its sector"
assert h.pread(M, 0) == first, "sub-sector read-modify-write changed other data"
assert flags_at(0, M) == 0, "written data not reported as data"

# --- FUA write and flush (1M..2M) ---------------------------------------------------------
fua = os.urandom(M)
h.pwrite(fua, M, nbd.CMD_FLAG_FUA)
assert h.pread(M, M) == fua, "FUA write not read back"
h.flush()
assert h.pread(M, M) == fua, "data changed after flush"
if disk_file:
    assert file_has_data(M, M), "FUA-written range not allocated in the backing file"
    assert_ciphertext(0, first + fua)

# --- trim (4M..6M): the trimmed half becomes a hole that reads as zeros -------------------
trim_data = os.urandom(2 * M)
h.pwrite(trim_data, 4 * M)
assert flags_at(4 * M, 2 * M) == 0
h.trim(M, 4 * M)
result = extents(2 * M, 4 * M)
assert result[0] == (M, HOLE_ZERO), f"trimmed range not a 1M hole: {result}"
assert result[1][1] == 0 and result[1][0] >= M, f"untrimmed half not data: {result}"
assert h.pread(M, 4 * M) == bytes(M), "trimmed range does not read as zeros"
assert h.pread(M, 5 * M) == trim_data[M:], "trim touched data outside its range"
h.trim(M, 5 * M, nbd.CMD_FLAG_FUA)
assert flags_at(4 * M, 2 * M) == HOLE_ZERO and extents(2 * M, 4 * M) == [(2 * M, HOLE_ZERO)], extents(2 * M, 4 * M)
if disk_file:
    assert not file_has_data(4 * M, 2 * M), "trim did not punch a hole in the backing file"

# --- write zeroes (8M..14M) --------------------------------------------------------------
h.pwrite(os.urandom(6 * M), 8 * M)
# plain: may punch a hole, must read as zeros, is reported as zero
h.zero(M, 8 * M)
assert h.pread(M, 8 * M) == bytes(M), "zeroed range does not read as zeros"
assert flags_at(8 * M, M) & nbd.STATE_ZERO, "zeroed range not reported as zero"
assert h.pread(4096, 9 * M) != bytes(4096), "zero went past its range"
# NO_HOLE: zeros, and the range stays (or becomes) provisioned in the backing file
blocks = os.stat(disk_file).st_blocks if disk_file else 0
h.zero(M, 10 * M, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(M, 10 * M) == bytes(M), "NO_HOLE-zeroed range does not read as zeros"
if disk_file:
    assert os.stat(disk_file).st_blocks >= blocks, "NO_HOLE zero of data released blocks"
    blocks = os.stat(disk_file).st_blocks
h.zero(M, 14 * M, nbd.CMD_FLAG_NO_HOLE)  # 14M..15M was never written: a hole
assert h.pread(M, 14 * M) == bytes(M), "NO_HOLE-zeroed hole does not read as zeros"
if disk_file:
    grown = os.stat(disk_file).st_blocks - blocks
    assert grown >= M // 512, f"NO_HOLE zero of a hole did not allocate it ({grown} blocks of 512 bytes)"
# FAST_ZERO: punching a hole is fast, so this succeeds
h.zero(M, 12 * M, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(M, 12 * M) == bytes(M), "FAST_ZERO range does not read as zeros"
# FAST_ZERO + FUA
h.zero(M, 13 * M, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_FUA)
assert h.pread(M, 13 * M) == bytes(M)
# FAST_ZERO of part of a sector needs a read-modify-write, which is not fast: ENOTSUP, and the
# data must be left alone (9M..10M still holds data)
before = h.pread(3 * SECTOR, 9 * M)
for count, offset in [(1024, 9 * M + 512), (2 * SECTOR + 512, 9 * M), (SECTOR, 9 * M + 2048), (512, 9 * M + SECTOR)]:
    expect_error(ENOTSUP, f"FAST_ZERO of {count} bytes at {offset}", h.zero, count, offset, nbd.CMD_FLAG_FAST_ZERO)
    assert h.pread(3 * SECTOR, 9 * M) == before, f"a refused FAST_ZERO of {count} bytes at {offset} changed the data"
# without FAST_ZERO the same partial range is zeroed (read-modify-write), and only it
h.zero(1024, 9 * M + 512)
partly = bytearray(before)
partly[512:1536] = bytes(1024)
assert h.pread(3 * SECTOR, 9 * M) == bytes(partly), "partial-sector zero wrong"
# a zero over a whole sector and two partial ones (9M+3584 .. 9M+8704)
h.zero(SECTOR + 1024, 9 * M + 3584, nbd.CMD_FLAG_NO_HOLE)
partly[3584:8704] = bytes(SECTOR + 1024)
assert h.pread(3 * SECTOR, 9 * M) == bytes(partly), "zero of a sector with partial edges wrong"
# FAST_ZERO + NO_HOLE: the server may refuse with ENOTSUP (and then must leave the data)
before = h.pread(M, 11 * M)
try:
    h.zero(M, 11 * M, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
    assert h.pread(M, 11 * M) == bytes(M), "FAST_ZERO|NO_HOLE range does not read as zeros"
except nbd.Error as e:
    assert e.errno in ENOTSUP, f"FAST_ZERO failed with {e.errno}, only ENOTSUP is allowed"
    assert h.pread(M, 11 * M) == before, "a failed FAST_ZERO changed the data"

# --- cache ---------------------------------------------------------------------------------
h.cache(2 * M, 0)
h.cache(4096, size - 4096)
assert h.pread(M, 0) == first, "data changed after cache"

# --- block status (16M..20M): 64K data then hole ------------------------------------------
h.pwrite(os.urandom(64 * K), 16 * M)
result = extents(4 * M, 16 * M)
assert result[0] == (64 * K, 0), f"first extent not 64K of data: {result}"
assert result[1][1] == HOLE_ZERO, f"second extent not a hole: {result}"
assert len(result) == 2 and sum(length for length, _ in result) == 4 * M, f"unexpected extents {result}"
one = extents(4 * M, 16 * M, nbd.CMD_FLAG_REQ_ONE)
assert one == [(64 * K, 0)], f"REQ_ONE over data: {one}"
one = extents(4 * M, 16 * M + 64 * K, nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 1 and one[0][1] == HOLE_ZERO and 0 < one[0][0] <= 4 * M, f"REQ_ONE over hole: {one}"
# a hole longer than the request is cut to the request with REQ_ONE
one = extents(8192, 20 * M, nbd.CMD_FLAG_REQ_ONE)
assert one == [(8192, HOLE_ZERO)], f"REQ_ONE extent not cut to the request: {one}"
# small query inside data, aligned to the minimum block size but not to a sector
one = extents(512, 16 * M + 512, nbd.CMD_FLAG_REQ_ONE)
assert one == [(512, 0)], f"sub-sector REQ_ONE: {one}"
# several alternating extents without REQ_ONE, and the tail of the disk
h.pwrite(b'\x01' * 4096, 17 * M)
h.pwrite(b'\x02' * 4096, 17 * M + 8192)
result = extents(16 * K, 17 * M)
assert result == [(4096, 0), (4096, HOLE_ZERO), (4096, 0), (4096, HOLE_ZERO)], f"alternating extents: {result}"
result = extents(M, size - M)
assert result == [(M, HOLE_ZERO)], f"tail extents: {result}"

# --- structured reads: OFFSET_HOLE chunks and DF -------------------------------------------
data, chunks = read_chunks(M, 21 * M)
assert data == bytes(M)
assert any(status == nbd.READ_HOLE for _, _, status in chunks), f"a read over a hole sent no hole chunk: {chunks}"
assert all(status == nbd.READ_HOLE for _, _, status in chunks), f"a read of a pure hole sent data: {chunks}"
# mixed: 64K data then hole
mixed_expected = h.pread(128 * K, 16 * M)
data, chunks = read_chunks(128 * K, 16 * M)
assert data == mixed_expected
assert data[64 * K:] == bytes(64 * K)
statuses = sorted(chunks)
assert statuses[0][2] == nbd.READ_DATA and statuses[-1][2] == nbd.READ_HOLE, f"mixed read chunks: {chunks}"
# DF: exactly one data chunk, with the zeros of the hole explicit
data, chunks = read_chunks(128 * K, 16 * M, nbd.CMD_FLAG_DF)
assert data == mixed_expected, "DF read returned different data"
assert chunks == [(16 * M, 128 * K, nbd.READ_DATA)], f"DF read not one data chunk: {chunks}"
data, chunks = read_chunks(M, 21 * M, nbd.CMD_FLAG_DF)
assert data == bytes(M) and len(chunks) == 1, f"DF read over a hole: {chunks}"
# a data read stays one data chunk
data, chunks = read_chunks(M, 0)
assert data == first and all(status == nbd.READ_DATA for _, _, status in chunks), chunks

# --- requests past the end or not 512-aligned, sent to the server (strict mode off) -------
h.set_strict_mode(0)
# below the minimum block size of 512: EINVAL, and nothing is written
for what, fn, args in [
    ('read at offset 100', h.pread, (512, 100)),
    ('read of 100 bytes', h.pread, (100, 0)),
    ('read of 7 bytes at 999', h.pread, (7, 999)),
    ('structured read at offset 100', h.pread_structured, (512, 100, lambda *a: 0)),
    ('write of 3 bytes at 1001', h.pwrite, (b'\xa5' * 3, 1001)),
    ('write of 4K at offset 100', h.pwrite, (b'\xa5' * 4096, 100)),
    ('trim at offset 100', h.trim, (SECTOR, 100)),
    ('zero of 100 bytes', h.zero, (100, 0)),
    ('fast zero at offset 100', h.zero, (SECTOR, 100, nbd.CMD_FLAG_FAST_ZERO)),
]:
    expect_error('EINVAL', what, fn, *args)
    alive()
assert h.pread(M, 0) == first, "a refused unaligned request changed the data"
# this server answers BLOCK_STATUS at any alignment (the spec lets it)
one = extents(100, 16 * M + 1, nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 1 and one[0][1] == 0 and one[0][0] <= 100, f"unaligned REQ_ONE: {one}"
expect_error('EINVAL', 'read past EOF', h.pread, 1024, size - 512)
alive()
expect_error('EINVAL', 'read at EOF', h.pread, 512, size)
alive()
expect_error('EINVAL', 'structured read past EOF', h.pread_structured, 1024, size - 512, lambda *a: 0)
alive()
expect_error('ENOSPC', 'write past EOF', h.pwrite, bytes(1024), size - 512)
alive()
assert h.pread(512, size - 512) == bytes(512), "a refused write past EOF changed the last sector"
expect_error('EINVAL', 'trim past EOF', h.trim, 1024, size - 512)
alive()
expect_error('ENOSPC', 'zero past EOF', h.zero, 1024, size - 512)
alive()
expect_error('EINVAL', 'block status past EOF', h.block_status, 1024, size, lambda *a: 0)
alive()
expect_error('EINVAL', 'cache past EOF', h.cache, 1024, size - 512)
alive()
# exactly up to EOF is fine
h.pwrite(b'\xee' * 512, size - 512)
assert h.pread(512, size - 512) == b'\xee' * 512
assert h.pread(SECTOR, size - SECTOR) == bytes(SECTOR - 512) + b'\xee' * 512, "write of the last 512 bytes changed its sector"
h.trim(512, size - 512)  # less than a sector: rounded inwards to nothing, allowed
assert flags_at(size - SECTOR, SECTOR) == 0, "trim of part of a sector released the sector"
h.trim(SECTOR, size - SECTOR)
assert flags_at(size - SECTOR, SECTOR) == HOLE_ZERO, "trim of the last sector left data"
assert h.pread(SECTOR, size - SECTOR) == bytes(SECTOR)
if disk_file:
    assert not file_has_data(size - SECTOR, SECTOR), "trim of the last sector did not punch the backing file"
h.flush()

h.shutdown()
print('OK basic')
