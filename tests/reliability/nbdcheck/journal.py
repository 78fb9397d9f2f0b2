"""The durability checker's journal: one text file per writer connection, kept outside the
daemon's state, appended (and handed to the kernel) before each write is sent and after each
reply arrives. Times are CLOCK_MONOTONIC nanoseconds, one clock for every process, so a FLUSH
on one connection can be compared with writes acknowledged on another (the daemon advertises
NBD_FLAG_CAN_MULTI_CONN: a flush on any connection covers every acknowledged write).

Record lines:
  I seq t offset length fua seed digests   intent, written before the write is sent
  A seq t ok|err                           reply received (t is taken after it arrived)
  FS fid t                                 a flush is about to be sent (t before sending)
  FD fid t ok|err                          the flush's reply arrived
Taking t before a send and after a reply errs on the safe side: a write is only counted as
covered by a flush if its reply had certainly arrived before the flush left."""

import time
from dataclasses import dataclass


def now():
    return time.monotonic_ns()


class JournalWriter:
    def __init__(self, path):
        self._file = open(path, "w", buffering=1 << 16)

    def _line(self, text):
        self._file.write(text + "\n")
        self._file.flush()  # into the kernel: it must survive this process, not a power cut

    def intent(self, seq, offset, length, fua, seed, digests):
        self._line(f"I {seq} {now()} {offset} {length} {int(fua)} {seed} {digests.hex()}")

    def ack(self, seq, ok):
        self._line(f"A {seq} {now()} {'ok' if ok else 'err'}")

    def flush_sent(self, fid):
        self._line(f"FS {fid} {now()}")

    def flush_done(self, fid, ok):
        self._line(f"FD {fid} {now()} {'ok' if ok else 'err'}")

    def close(self):
        self._file.close()


@dataclass
class Write:
    worker: int
    seq: int
    offset: int
    length: int
    fua: bool
    seed: int
    digests: bytes
    ack_ns: int | None = None  # None: no successful reply (in flight at the kill, or failed)


@dataclass
class Flush:
    worker: int
    fid: int
    sent_ns: int
    done_ns: int | None = None  # None: no successful reply


def read(paths):
    """All writes and flushes of a trial, from every worker's journal. A last line cut short
    (the writer was stopped mid-line) is ignored, which can only make the checker stricter
    about nothing: an intent without its line is a write that was never sent."""
    writes, flushes = [], []
    for worker, path in enumerate(paths):
        by_seq, by_fid = {}, {}
        with open(path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                fields = line.split()
                kind = fields[0]
                if kind == "I":
                    seq, t, offset, length, fua, seed, hexdigests = fields[1:]
                    w = Write(worker, int(seq), int(offset), int(length), fua == "1", int(seed), bytes.fromhex(hexdigests))
                    by_seq[w.seq] = w
                    writes.append(w)
                elif kind == "A" and fields[3] == "ok":
                    by_seq[int(fields[1])].ack_ns = int(fields[2])
                elif kind == "FS":
                    fl = Flush(worker, int(fields[1]), int(fields[2]))
                    by_fid[fl.fid] = fl
                    flushes.append(fl)
                elif kind == "FD" and fields[3] == "ok":
                    by_fid[int(fields[1])].done_ns = int(fields[2])
    return writes, flushes
