# Several connections to one export (CAN_MULTI_CONN): what one connection wrote and flushed,
# or wrote with FUA, is what every other connection reads. Run inside nbdsh with URI set to a
# writable export of at least 16 MiB.
import os

import nbd

K = 1024
M = 1024 * 1024
uri = os.environ['URI']

handles = []
for _ in range(3):
    c = nbd.NBD()
    c.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    c.connect_uri(uri)
    assert c.can_multi_conn(), "CAN_MULTI_CONN is not advertised"
    handles.append(c)
h0, h1, h2 = handles
size = h0.get_size()
assert all(c.get_size() == size for c in handles)

# write on one connection (not flushed), flush on a second, read on the third
data = os.urandom(M)
h1.pwrite(data, 0)
h2.flush()
assert h0.pread(M, 0) == data, "a write flushed on another connection is not visible"
assert h2.pread(M, 0) == data

# a FUA write is visible on the other connections at once
fua = os.urandom(64 * K)
h2.pwrite(fua, 2 * M, nbd.CMD_FLAG_FUA)
assert h0.pread(64 * K, 2 * M) == fua, "a FUA write is not visible on another connection"
assert h1.pread(64 * K, 2 * M) == fua

# trim and write zeroes on one connection, seen (as zeros and as a hole) by the others
h0.pwrite(os.urandom(2 * M), 4 * M)
h0.trim(M, 4 * M, nbd.CMD_FLAG_FUA)
h0.zero(M, 5 * M, nbd.CMD_FLAG_FUA)
for c in (h1, h2):
    assert c.pread(2 * M, 4 * M) == bytes(2 * M), "trim/zero on another connection not visible"
    seen = []
    c.block_status(2 * M, 4 * M, lambda ctx, off, entries, err: seen.append(list(entries)) or 0)
    assert seen and seen[0][1] & nbd.STATE_ZERO, f"trimmed range not reported as zero on another connection: {seen}"

# interleaved asynchronous writes from all three connections to disjoint 4K blocks, then
# each connection reads everything back
blocks = {}
cookies = []
for i in range(96):
    c = handles[i % 3]
    payload = os.urandom(4096)
    offset = 8 * M + i * 4096
    blocks[offset] = payload
    cookies.append((c, c.aio_pwrite(payload, offset)))
for c, cookie in cookies:
    while not c.aio_command_completed(cookie):
        c.poll(1)
for c in handles:
    c.flush()
expected = b''.join(blocks[o] for o in sorted(blocks))
for c in handles:
    assert c.pread(len(expected), 8 * M) == expected, "interleaved writes are not visible to every connection"

# overwrite the same block from every connection in turn: the last writer wins everywhere
for i, c in enumerate(handles * 2):
    payload = bytes([i]) * 4096
    c.pwrite(payload, 12 * M)
    for other in handles:
        assert other.pread(4096, 12 * M) == payload, f"round {i}: stale data on another connection"

# closing one connection leaves the others working
h1.shutdown()
h0.pwrite(b'\x5a' * 512, 13 * M)
assert h2.pread(512, 13 * M) == b'\x5a' * 512
h0.shutdown()
h2.shutdown()
print('OK multiconn')
