# Malformed requests that libnbd normally refuses client-side, sent to the server with strict
# mode off. Each must fail with the right errno and leave the connection usable.
# Run inside nbdsh with URI set to a writable export of at least 4 MiB.
import os

import nbd

M = 1024 * 1024

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(os.environ['URI'])
size = h.get_size()
assert h.get_structured_replies_negotiated()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)

marker = os.urandom(M)
h.pwrite(marker, 0)
h.set_strict_mode(0)
assert h.get_strict_mode() == 0


def expect_error(allowed, what, fn, *args):
    if isinstance(allowed, str):
        allowed = (allowed,)
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errno in allowed, f"{what}: expected {'/'.join(allowed)}, got {e.errno} ({e.string})"
    else:
        raise AssertionError(f"{what}: succeeded, expected {'/'.join(allowed)}")
    # the connection survives and is still in step with the server
    assert not h.aio_is_dead() and h.aio_is_ready(), f"{what}: connection is gone"
    assert h.pread(M, 0) == marker, f"{what}: data or framing damaged afterwards"


def no_extents(*args):
    return 0


UNKNOWN = 1 << 6  # not a defined command flag (bit 5 is PAYLOAD_LEN, extended headers only)
TOP = 1 << 15

# --- unknown command flags ----------------------------------------------------------------
expect_error('EINVAL', 'read with an unknown flag', h.pread, 4096, 0, UNKNOWN)
expect_error('EINVAL', 'read with flag bit 15', h.pread, 4096, 0, TOP)
expect_error('EINVAL', 'structured read with an unknown flag', h.pread_structured, 4096, 0, lambda *a: 0, UNKNOWN)
# a refused write must still have its payload consumed, or the framing is lost
expect_error('EINVAL', 'write with an unknown flag', h.pwrite, os.urandom(M), 0, UNKNOWN)
expect_error('EINVAL', 'write with PAYLOAD_LEN (no extended headers)', h.pwrite, os.urandom(4096), 0, 1 << 5)
expect_error('EINVAL', 'flush with an unknown flag', h.flush, UNKNOWN)
expect_error('EINVAL', 'trim with an unknown flag', h.trim, 4096, 0, UNKNOWN)
expect_error('EINVAL', 'zero with an unknown flag', h.zero, 4096, 0, UNKNOWN)
expect_error('EINVAL', 'cache with an unknown flag', h.cache, 4096, 0, UNKNOWN)
expect_error('EINVAL', 'block status with an unknown flag', h.block_status, 4096, 0, no_extents, UNKNOWN)

# --- known flags on the wrong command -----------------------------------------------------
expect_error('EINVAL', 'NO_HOLE on a write', h.pwrite, os.urandom(4096), 0, nbd.CMD_FLAG_NO_HOLE)
expect_error('EINVAL', 'NO_HOLE on a trim', h.trim, 4096, 0, nbd.CMD_FLAG_NO_HOLE)
expect_error('EINVAL', 'REQ_ONE on a read', h.pread, 4096, 0, nbd.CMD_FLAG_REQ_ONE)
expect_error('EINVAL', 'REQ_ONE on a write', h.pwrite, os.urandom(4096), 0, nbd.CMD_FLAG_REQ_ONE)
expect_error('EINVAL', 'FAST_ZERO on a trim', h.trim, 4096, 0, nbd.CMD_FLAG_FAST_ZERO)
expect_error('EINVAL', 'FAST_ZERO on a write', h.pwrite, os.urandom(4096), 0, nbd.CMD_FLAG_FAST_ZERO)
expect_error('EINVAL', 'DF on a write', h.pwrite, os.urandom(4096), 0, nbd.CMD_FLAG_DF)
expect_error('EINVAL', 'DF on block status', h.block_status, 4096, 0, no_extents, nbd.CMD_FLAG_DF)
expect_error('EINVAL', 'NO_HOLE on a read', h.pread, 4096, 0, nbd.CMD_FLAG_NO_HOLE)

# FUA is valid on every command once advertised: the server accepts and ignores it
assert h.pread(M, 0, nbd.CMD_FLAG_FUA) == marker, "read with FUA"
h.cache(4096, 0, nbd.CMD_FLAG_FUA)
h.flush(nbd.CMD_FLAG_FUA)
got = []
h.block_status(4096, 0, lambda ctx, off, entries, err: got.append(entries) or 0, nbd.CMD_FLAG_FUA)
assert got and got[0][1] == 0, f"block status with FUA: {got}"

# --- zero-length requests -----------------------------------------------------------------
expect_error('EINVAL', 'zero-length read', h.pread, 0, 0)
expect_error('EINVAL', 'zero-length write', h.pwrite, b'', 0)
expect_error('EINVAL', 'zero-length trim', h.trim, 0, 0)
expect_error('EINVAL', 'zero-length zero', h.zero, 0, 0)
expect_error('EINVAL', 'zero-length cache', h.cache, 0, 0)
expect_error('EINVAL', 'zero-length block status', h.block_status, 0, 0, no_extents)

# --- offset + length wrapping around 2^64 (nbd-server 6d9223e) ----------------------------
WRAP = 2 ** 64 - 512
expect_error('EINVAL', 'read wrapping around', h.pread, 1024, WRAP)
expect_error('EINVAL', 'structured read wrapping around', h.pread_structured, 1024, WRAP, lambda *a: 0)
# a write past EOF is ENOSPC in the spec; EINVAL is also acceptable for a nonsense offset
expect_error(('ENOSPC', 'EINVAL'), 'write wrapping around', h.pwrite, os.urandom(1024), WRAP)
expect_error('EINVAL', 'trim wrapping around', h.trim, 1024, WRAP)
expect_error(('ENOSPC', 'EINVAL'), 'zero wrapping around', h.zero, 1024, WRAP)
expect_error('EINVAL', 'cache wrapping around', h.cache, 1024, WRAP)
expect_error('EINVAL', 'block status wrapping around', h.block_status, 1024, WRAP, no_extents)
# the largest offsets, and a length that reaches exactly past the end
expect_error('EINVAL', 'read at offset 2^64-1', h.pread, 1, 2 ** 64 - 1)
expect_error('EINVAL', 'read at offset 2^63', h.pread, 512, 2 ** 63)
expect_error('EINVAL', 'read one byte past EOF', h.pread, 1, size)
expect_error('EINVAL', 'trim of 4 GiB - 1 at 0 (past EOF)', h.trim, 2 ** 32 - 1, 0)

# --- oversized payloads that are not data (limits are the server's own) -------------------
expect_error(('EINVAL', 'EOVERFLOW'), 'read above the maximum payload', h.pread, 32 * M + 512, 0)

# the data survived everything above
assert h.pread(M, 0) == marker
assert h.pread(512, size - 512) == bytes(512), "something was written at the end of the disk"
h.shutdown()
print('OK negative')
