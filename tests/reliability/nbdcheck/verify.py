"""The durability rule, applied to what the disk holds after a crash and restart.

A write is durable when its reply arrived and it carried FUA, or when a FLUSH that was sent
after its reply (on any connection) completed. For each sector, the writes to it are ordered
(see writer.py). After the crash the sector must hold its last durable version (its content at
the start of the trial if no write to it became durable) or a version written after that one:
acknowledged or still in flight at the kill. An older version is lost data; anything that is
none of these versions is garbage. Both count as bytes lost."""

from dataclasses import dataclass, field

from . import content

SECTOR = content.SECTOR
DIGEST = content.DIGEST_SIZE
READ_CHUNK = 4 << 20


def mark_durable(writes, flushes):
    """Sets w.durable and w.acked on every write."""
    covered_before = max((f.sent_ns for f in flushes if f.done_ns is not None), default=-1)
    for w in writes:
        w.acked = w.ack_ns is not None
        w.durable = w.acked and (w.fua or w.ack_ns < covered_before)


def sector_versions(writes):
    """sector -> [(digest, durable, acked, write)] in the order the writes were sent."""
    versions = {}
    for w in sorted(writes, key=lambda w: (w.worker, w.seq)):
        first = w.offset // SECTOR
        for i in range(w.length // SECTOR):
            versions.setdefault(first + i, []).append((w.digests[i * DIGEST:(i + 1) * DIGEST], w.durable, w.acked, w))
    return versions


@dataclass
class Result:
    sectors_checked: int = 0
    sectors_with_durable_write: int = 0
    sectors_newer_than_durable: int = 0  # held a version sent after the last durable one
    sectors_lost_older: int = 0
    sectors_lost_garbage: int = 0
    # Not a loss by the rule: an acknowledged but unflushed write that did not survive.
    # SIGKILL leaves the page cache intact, so a non-zero count would show data held back
    # in the daemon's own memory after it had answered.
    sectors_acked_reverted: int = 0
    problems: list = field(default_factory=list)

    @property
    def bytes_lost(self):
        return (self.sectors_lost_older + self.sectors_lost_garbage) * SECTOR


def check(h, size, baseline, versions):
    """Reads the whole disk through `h` and applies the rule to every sector. `baseline` (a
    bytearray of one digest per sector) holds each sector's content before the trial and is
    updated to what the disk holds now, the next trial's starting point."""
    result = Result()
    for chunk_offset in range(0, size, READ_CHUNK):
        data = h.pread(min(READ_CHUNK, size - chunk_offset), chunk_offset)
        view = memoryview(data)
        for j in range(0, len(data), SECTOR):
            sector = chunk_offset // SECTOR + j // SECTOR
            found = content.digest(view[j:j + SECTOR])
            before = bytes(baseline[sector * DIGEST:(sector + 1) * DIGEST])
            baseline[sector * DIGEST:(sector + 1) * DIGEST] = found
            result.sectors_checked += 1
            history = versions.get(sector)
            if not history:
                if found != before:
                    lose(result, sector, "garbage", data[j:j + SECTOR], "nothing was written here in this trial")
                continue
            last_durable = max((k for k, v in enumerate(history) if v[1]), default=-1)
            if last_durable >= 0:
                result.sectors_with_durable_write += 1
            allowed = {history[last_durable][0] if last_durable >= 0 else before}
            newer = {v[0] for v in history[last_durable + 1:]}
            if found in allowed:
                pass
            elif found in newer:
                result.sectors_newer_than_durable += 1
            else:
                older = {before} | {v[0] for v in history[:max(last_durable, 0)]}
                kind = "older" if found in older else "garbage"
                w = history[last_durable][3] if last_durable >= 0 else None
                expected = f"write {w.seq} of worker {w.worker} (fua={w.fua})" if w else "the trial's starting content"
                lose(result, sector, kind, data[j:j + SECTOR], f"expected {expected} or later")
                continue
            last_acked = max((k for k, v in enumerate(history) if v[2]), default=-1)
            position = next((k for k in range(len(history) - 1, -1, -1) if history[k][0] == found), -1)
            if position < last_acked:
                result.sectors_acked_reverted += 1
    return result


def lose(result, sector, kind, data, why):
    if kind == "older":
        result.sectors_lost_older += 1
    else:
        result.sectors_lost_garbage += 1
    if len(result.problems) < 20:
        result.problems.append(f"sector {sector} (byte {sector * SECTOR}): {kind}: holds {content.describe(data)}; {why}")
