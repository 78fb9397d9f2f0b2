# Fills a disk whose backing file lives on a small file system until the file system is full,
# then frees the space with TRIM and fills it again, CYCLES times. Checks at every step:
#   - the write that finds the file system full fails with ENOSPC (never EIO or anything else),
#     and so do later writes of every shape (whole sectors, a partial sector, zeroes kept allocated);
#   - every write acknowledged before it reads back intact, and FLUSH still succeeds;
#   - after TRIM the range reads as zeros and the space is writable again.
# Run with Debian's python3: nbdsh -c "exec(open(PATH).read())" with URI and CYCLES in the
# environment; MODE=verify only checks the pattern of the last cycle (after a daemon restart).
# Prints "FIGURES: ..." lines that the reliability script collects.
import hashlib
import os

import nbd

CHUNK = 256 * 1024
SECTOR = 4096


def pattern(cycle, offset, length=CHUNK):
    seed = hashlib.sha256(f"{cycle}:{offset}".encode()).digest()
    return (seed * (length // len(seed) + 1))[:length]


def expect_enospc(what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errno == "ENOSPC", f"{what}: expected ENOSPC, got {e.errno} ({e.string})"
        return
    raise AssertionError(f"{what} succeeded on a full file system")


h = nbd.NBD()
h.connect_uri(os.environ["URI"])
size = h.get_size()
cycles = int(os.environ.get("CYCLES", "1"))
state_file = os.environ["STATE_FILE"]  # remembers the last cycle's extent for MODE=verify

if os.environ.get("MODE") == "verify":
    cycle, written = (int(x) for x in open(state_file).read().split())
    for offset in range(0, written, CHUNK):
        assert h.pread(CHUNK, offset) == pattern(cycle, offset), f"after restart: cycle {cycle} data at {offset} differs"
    print(f"FIGURES: verified after restart {written} bytes")
    raise SystemExit(0)

fills = []
for cycle in range(cycles):
    offset = 0
    while True:
        assert offset + CHUNK <= size, "the disk is larger than the file system: make the file system smaller"
        try:
            h.pwrite(pattern(cycle, offset), offset)
        except nbd.Error as e:
            assert e.errno == "ENOSPC", f"cycle {cycle}: the write that filled the file system failed with {e.errno} ({e.string}), not ENOSPC"
            break
        offset += CHUNK
    written = offset
    assert written >= 1024 * 1024, f"cycle {cycle}: only {written} bytes fit before ENOSPC"

    # Other shapes of write, further on, meet the same full file system.
    tail = written + 2 * CHUNK
    expect_enospc("a whole-sector write", h.pwrite, b"\x5a" * CHUNK, tail)
    expect_enospc("a partial-sector write (read-modify-write)", h.pwrite, b"\x5b" * 512, tail + CHUNK + 512)
    expect_enospc("write zeroes that must stay allocated", h.zero, CHUNK, tail + 2 * CHUNK, nbd.CMD_FLAG_NO_HOLE)
    h.flush()

    for offset in range(0, written, CHUNK):
        assert h.pread(CHUNK, offset) == pattern(cycle, offset), f"cycle {cycle}: acknowledged data at {offset} differs after ENOSPC"

    fills.append(written)
    with open(state_file, "w") as f:
        f.write(f"{cycle} {written}")
    if cycle + 1 < cycles:
        h.trim(size, 0)
        h.flush()
        assert h.pread(CHUNK, 0) == bytes(CHUNK), "a trimmed range does not read as zeros"

h.shutdown()
print(f"FIGURES: {cycles} fills of the file system: {min(fills)}-{max(fills)} bytes acknowledged before ENOSPC, "
      f"{4 * cycles} writes refused with ENOSPC and none with another error, {sum(fills)} bytes verified after ENOSPC")
