# The backing file fails chosen ranges with EIO (faultyfs under the daemon's file). In each
# trial a random range goes bad for reads, then another for writes. Checks:
#   - a request touching a bad range fails with EIO; every other request succeeds with the right data;
#   - a failed write leaves each sector of its range either entirely old or entirely new, never garbage;
#   - once the range heals it reads and writes again, and the whole disk holds what was acknowledged.
# Run with Debian's python3: nbdsh -c "exec(open(PATH).read())" with URI, FAULTS_FILE (faultyfs's
# fault list), PAYLOAD_OFFSET (where the disk's sectors start in the backing file), TRIALS and SEED.
# Prints a "FIGURES: ..." line that the reliability script collects.
import hashlib
import os
import random

import nbd

CHUNK = 64 * 1024
SECTOR = 4096

faults_file = os.environ["FAULTS_FILE"]
payload = int(os.environ["PAYLOAD_OFFSET"])
trials = int(os.environ.get("TRIALS", "1"))
rng = random.Random(int(os.environ.get("SEED", "1")))


def pattern(generation, offset):
    seed = hashlib.sha256(f"{generation}:{offset}".encode()).digest()
    return (seed * (CHUNK // len(seed)))[:CHUNK]


def set_faults(*faults):
    # Replaced by rename: faultyfs re-reads it when its inode changes, never half-written.
    with open(faults_file + ".tmp", "w") as f:
        for kind, offset, length in faults:
            f.write(f"{kind} {payload + offset} {length}\n")
    os.replace(faults_file + ".tmp", faults_file)


def overlaps(offset, bad, bad_length):
    return offset < bad + bad_length and bad < offset + CHUNK


def expect_eio(what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errno == "EIO", f"{what}: expected EIO, got {e.errno} ({e.string})"
        return
    raise AssertionError(f"{what} succeeded over a failing range")


h = nbd.NBD()
h.connect_uri(os.environ["URI"])
size = h.get_size()
chunks = range(0, size, CHUNK)
expected = {}
for offset in chunks:
    expected[offset] = pattern(0, offset)
    h.pwrite(expected[offset], offset)
h.flush()

eio_reads = good_reads = eio_writes = good_writes = torn = 0
for trial in range(1, trials + 1):
    # Reads: the chunks over the bad range fail, all others serve the right data.
    bad = rng.randrange(0, size // SECTOR - 16) * SECTOR
    bad_length = rng.choice([512, SECTOR, 3 * SECTOR, CHUNK])
    set_faults(("read", bad, bad_length))
    for offset in chunks:
        if overlaps(offset, bad, bad_length):
            expect_eio(f"trial {trial}: read at {offset} over bad range {bad}+{bad_length}", h.pread, CHUNK, offset)
            eio_reads += 1
        else:
            assert h.pread(CHUNK, offset) == expected[offset], f"trial {trial}: read at {offset}, away from bad range {bad}+{bad_length}, returned wrong data"
            good_reads += 1

    # Writes: the chunk over the bad range fails, a write elsewhere succeeds.
    bad = rng.randrange(0, size // SECTOR) * SECTOR
    set_faults(("write", bad, SECTOR))
    failed = bad - bad % CHUNK
    expect_eio(f"trial {trial}: write at {failed} over bad range {bad}+{SECTOR}", h.pwrite, pattern(trial, failed), failed)
    eio_writes += 1
    elsewhere = rng.choice([o for o in chunks if o != failed])
    expected[elsewhere] = pattern(trial, elsewhere)
    h.pwrite(expected[elsewhere], elsewhere)
    h.flush()
    good_writes += 1

    # Healed: the failed write left whole old or whole new sectors; the range is writable again.
    set_faults()
    after = h.pread(CHUNK, failed)
    for s in range(0, CHUNK, SECTOR):
        sector = after[s:s + SECTOR]
        if sector == pattern(trial, failed)[s:s + SECTOR]:
            continue
        assert sector == expected[failed][s:s + SECTOR], f"trial {trial}: sector at {failed + s} is neither old nor new after a failed write"
    expected[failed] = pattern(trial, failed)
    h.pwrite(expected[failed], failed)
    for offset in chunks:
        if h.pread(CHUNK, offset) != expected[offset]:
            torn += 1
    assert torn == 0, f"trial {trial}: {torn} chunks differ from what was acknowledged"

h.flush()
h.shutdown()
print(f"FIGURES: {trials} trials on {size >> 20} MiB: {eio_reads} reads and {eio_writes} writes failed with EIO over bad ranges; "
      f"{good_reads} reads and {good_writes} writes elsewhere served correctly; {torn} chunks differed afterwards")
