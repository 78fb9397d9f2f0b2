# Older client paths: simple replies (no NBD_OPT_STRUCTURED_REPLY), GO without NO_ZEROES, and
# the non-fixed newstyle handshake that enters transmission with NBD_OPT_EXPORT_NAME (with and
# without the 124 zero bytes). Each path must read, write, flush, trim and zero correctly.
# Run inside nbdsh with URI set to a writable export of at least 16 MiB.
import os
import urllib.parse

import nbd

K = 1024
M = 1024 * 1024
uri = os.environ['URI']
parsed = urllib.parse.urlparse(uri)
own_export = urllib.parse.unquote(parsed.path.lstrip('/'))
FIXED = nbd.HANDSHAKE_FLAG_FIXED_NEWSTYLE
NO_ZEROES = nbd.HANDSHAKE_FLAG_NO_ZEROES


def connect(handshake_flags=None, structured=True, target=None, label=''):
    c = nbd.NBD()
    if handshake_flags is not None:
        c.set_handshake_flags(handshake_flags)
    c.set_request_structured_replies(structured)
    c.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    try:
        c.connect_uri(target or uri)
    except nbd.Error as e:
        raise AssertionError(f"{label}: connecting failed: {e.string}") from e
    return c


def exercise(c, label, base):
    """Reads, writes and the other data commands on one connection, with its own region."""
    size = c.get_size()
    assert size >= base + 4 * M, f"{label}: export too small"
    for cap in ['flush', 'fua', 'trim', 'zero', 'cache', 'multi_conn']:
        assert getattr(c, 'can_' + cap)(), f"{label}: can_{cap} is false"
    data = os.urandom(M)
    c.pwrite(data, base)
    assert c.pread(M, base) == data, f"{label}: read back differs"
    # a read across data and a hole: with simple replies all of it comes as data
    assert c.pread(2 * M, base) == data + bytes(M), f"{label}: read over data and hole"
    # 512-aligned but not sector-aligned (4K): a read-modify-write across a sector boundary, with FUA
    c.pwrite(b'\x77' * 1024, base + 3584, nbd.CMD_FLAG_FUA)
    assert c.pread(2048, base + 3072) == data[3072:3584] + b'\x77' * 1024 + data[4608:5120], f"{label}: sub-sector FUA write"
    data = data[:3584] + b'\x77' * 1024 + data[4608:]
    assert c.pread(M, base) == data, f"{label}: sub-sector write changed other data"
    c.flush()
    c.trim(64 * K, base)
    assert c.pread(64 * K, base) == bytes(64 * K), f"{label}: trimmed range not zero"
    c.zero(64 * K, base + 64 * K)
    c.zero(64 * K, base + 128 * K, nbd.CMD_FLAG_NO_HOLE)
    assert c.pread(192 * K, base) == bytes(192 * K), f"{label}: zeroed range not zero"
    assert c.pread(4096, base + 192 * K) == data[192 * K:196 * K], f"{label}: zero went too far"
    c.cache(M, base)
    # a large read (max payload) in one request
    big = os.urandom(2 * M)
    c.pwrite(big, base + 2 * M)
    assert c.pread(2 * M, base + 2 * M) == big, f"{label}: 2 MiB read"
    # errors with simple replies: a read error carries no payload, so the stream stays framed
    c.set_strict_mode(0)
    for what, fn, args, want in [
        ('read past EOF', c.pread, (4096, size - 512), 'EINVAL'),
        ('write past EOF', c.pwrite, (bytes(4096), size - 512), 'ENOSPC'),
        # below the minimum block size of 512; a refused write's payload must still be consumed
        ('read at offset 10', c.pread, (512, base + 10), 'EINVAL'),
        ('read of 100 bytes', c.pread, (100, base), 'EINVAL'),
        ('write of 100 bytes at offset 10', c.pwrite, (b'\x66' * 100, base + 10), 'EINVAL'),
        ('write of 4K at offset 100', c.pwrite, (b'\x66' * 4096, base + 100), 'EINVAL'),
        ('read with REQ_ONE', c.pread, (4096, 0, nbd.CMD_FLAG_REQ_ONE), 'EINVAL'),
        ('zero-length read', c.pread, (0, 0), 'EINVAL'),
    ]:
        try:
            fn(*args)
        except nbd.Error as e:
            assert e.errno == want, f"{label}: {what}: {e.errno} ({e.string}), expected {want}"
        else:
            raise AssertionError(f"{label}: {what} succeeded")
        assert c.pread(4096, base + 2 * M) == big[:4096], f"{label}: connection broken after {what}"
    assert c.pread(M, base) == bytes(192 * K) + data[192 * K:], f"{label}: a refused request changed the data"
    c.set_strict_mode(nbd.STRICT_MASK)
    return data


# --- 1. GO, simple replies --------------------------------------------------------------
c = connect(structured=False, label='simple replies')
assert c.get_protocol() == 'newstyle-fixed', c.get_protocol()
assert not c.get_structured_replies_negotiated(), "structured replies negotiated though not requested"
assert not c.can_df(), "DF advertised without structured replies (spec: MUST be clear)"
assert not c.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "meta context without structured replies"
try:
    c.block_status(4096, 0, lambda *a: 0)
    raise AssertionError("block status worked without structured replies")
except nbd.Error:
    pass
exercise(c, 'simple replies', 0)
c.shutdown()

# --- 2. GO without NO_ZEROES (fixed newstyle only) -------------------------------------
c = connect(handshake_flags=FIXED, label='fixed newstyle without NO_ZEROES')
assert c.get_protocol() == 'newstyle-fixed'
assert c.get_handshake_flags() == FIXED, c.get_handshake_flags()
assert c.get_structured_replies_negotiated() and c.can_df()
exercise(c, 'fixed newstyle without NO_ZEROES', 4 * M)
c.shutdown()

# --- 3. plain newstyle: NBD_OPT_EXPORT_NAME, 124 zero bytes after the export info ----------
c = connect(handshake_flags=0, label='plain newstyle (client flags 0), EXPORT_NAME')
assert c.get_protocol() == 'newstyle', c.get_protocol()
assert c.get_handshake_flags() == 0, c.get_handshake_flags()
assert not c.get_structured_replies_negotiated(), "EXPORT_NAME path cannot have structured replies"
assert not c.can_df(), "DF advertised on the EXPORT_NAME path without structured replies"
exercise(c, 'EXPORT_NAME with zero padding', 8 * M)
c.shutdown()

# --- 4. plain newstyle with NO_ZEROES: EXPORT_NAME without the padding -----------------
c = connect(handshake_flags=NO_ZEROES, label='plain newstyle with NO_ZEROES (client flags 0x2), EXPORT_NAME')
assert c.get_protocol() == 'newstyle', c.get_protocol()
assert c.get_handshake_flags() == NO_ZEROES, c.get_handshake_flags()
exercise(c, 'EXPORT_NAME without zero padding', 12 * M)
c.shutdown()

# --- 5. EXPORT_NAME for an unknown export: the server can only hang up ------------------
bad = uri.replace('/' + own_export, '/no-such-disk', 1)
assert bad != uri
try:
    connect(handshake_flags=0, target=bad, label='unknown export')
    raise RuntimeError("EXPORT_NAME of an unknown export was accepted")
except AssertionError:
    pass
# and the server still serves the next client, which sees everything the others wrote
c = connect(label='after the refused export')
assert c.pread(4096, 8 * M + 2 * M) != bytes(4096), "data written on the EXPORT_NAME path is missing"
c.shutdown()
print('OK legacy-paths')
