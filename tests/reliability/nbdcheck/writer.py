"""One writer connection of the durability checker: pipelined writes of random sizes into its
own region of the disk, some with FUA, and a FLUSH now and then while writes keep flowing.
It never has two overlapping writes in flight, so the writes to any one sector are ordered:
each was sent after the previous one was answered. It runs until the connection dies (the
daemon was killed) or it is told to stop, journaling every step first."""

import errno
import random

import nbd

from . import content
from .journal import JournalWriter

SECTOR = content.SECTOR
MAX_SECTORS = 2048  # 1 MiB


def pick_length(rng):
    """512 B to 1 MiB, most of them small as a file system's are: a power-of-two bucket, then
    a size within it, so odd sizes (not multiples of 4 KiB) are common."""
    bucket = rng.randint(0, 11)
    return rng.randint(1 << bucket >> 1 or 1, 1 << bucket) * SECTOR


def run(uri, trial, worker, region, journal_path, seed, shared, queue_depth=8, fua_percent=15):
    """`region` = (first byte, end byte) this writer owns. `shared` holds the counters the
    killer watches: started (writers connected) and flushes_in_flight."""
    rng = random.Random(seed)
    journal = JournalWriter(journal_path)
    h = nbd.NBD()
    h.connect_uri(uri)
    with shared.started.get_lock():
        shared.started.value += 1
    writes = {}  # cookie -> (seq, first sector, end sector, buffer kept alive)
    flush = None  # (cookie, fid) of the flush in flight
    seq = fid = 0
    acked_since_flush = 0
    flush_after = rng.randint(4, 40)
    start, end = region
    try:
        while not shared.stop.is_set():
            while len(writes) < queue_depth:
                length = pick_length(rng)
                for _ in range(20):  # a place not overlapping a write in flight
                    offset = rng.randrange(start, end - length + 1, SECTOR)
                    first, last = offset // SECTOR, (offset + length) // SECTOR
                    if all(last <= a or first >= b for _, a, b, _ in writes.values()):
                        break
                else:
                    break
                seq += 1
                fua = rng.randrange(100) < fua_percent
                wseed = rng.getrandbits(63)
                data = content.payload(wseed, trial, worker, seq, offset, length)
                journal.intent(seq, offset, length, fua, wseed, content.digests(data))
                buf = nbd.Buffer.from_bytearray(data)
                cookie = h.aio_pwrite(buf, offset, flags=nbd.CMD_FLAG_FUA if fua else 0)
                writes[cookie] = (seq, first, last, buf)
            if flush is None and acked_since_flush >= flush_after:
                fid += 1
                with shared.flushes_in_flight.get_lock():
                    shared.flushes_in_flight.value += 1
                journal.flush_sent(fid)
                flush = (h.aio_flush(), fid)
                acked_since_flush = 0
                flush_after = rng.randint(4, 40)
            h.poll(-1)
            for cookie in list(writes):
                outcome = completed(h, cookie)
                if outcome is not None:
                    journal.ack(writes.pop(cookie)[0], outcome)
                    acked_since_flush += outcome == "ok"
            if flush is not None:
                outcome = completed(h, flush[0])
                if outcome is not None:
                    journal.flush_done(flush[1], outcome)
                    flush = None
                    with shared.flushes_in_flight.get_lock():
                        shared.flushes_in_flight.value -= 1
    except nbd.Error:
        pass  # the daemon is gone: what was in flight stays journaled as sent, not answered
    finally:
        journal.close()


def completed(h, cookie):
    """"ok" once answered with success, "err:ERRNO" once failed, None while in flight. When the
    connection dies, libnbd retires what was in flight with an error (see journal.DISCONNECTED)."""
    try:
        return "ok" if h.aio_command_completed(cookie) else None
    except nbd.Error as e:
        return f"err:{errno.errorcode.get(e.errno, e.errno)}"
