"""The durability checker's journal: one text file per writer connection, kept outside the
daemon's state, appended (and handed to the kernel) before each write is sent and after each
reply arrives. Times are CLOCK_MONOTONIC nanoseconds, one clock for every process, so a FLUSH
on one connection can be compared with writes acknowledged on another (the daemon advertises
NBD_FLAG_CAN_MULTI_CONN: a flush on any connection covers every acknowledged write).

Record lines:
  I seq t offset length fua seed digests   intent, written before the write is sent
  A seq t ok|err:ERRNO                     reply received (t is taken after it arrived)
  FS fid t                                 a flush is about to be sent (t before sending)
  FD fid t ok|err:ERRNO                    the flush's reply arrived
Taking t before a send and after a reply errs on the safe side: a write is only counted as
covered by a flush if its reply had certainly arrived before the flush left."""

import time
from dataclasses import dataclass

# How libnbd fails the commands in flight when the server vanishes. Any other error is an
# error reply from the server itself, which a crash test must not see.
DISCONNECTED = {"err:ENOTCONN", "err:ECONNRESET", "err:EPIPE"}


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

    def ack(self, seq, outcome):
        self._line(f"A {seq} {now()} {outcome}")

    def flush_sent(self, fid):
        self._line(f"FS {fid} {now()}")

    def flush_done(self, fid, outcome):
        self._line(f"FD {fid} {now()} {outcome}")

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
    """All writes and flushes of a trial from every worker's journal, and the server's error
    replies ("worker W write|flush N: err:ERRNO"). A last line cut short (the writer was stopped
    mid-line) is ignored; an intent without its reply is a write in flight at the kill."""
    writes, flushes, server_errors = [], [], []
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
                elif kind == "FS":
                    fl = Flush(worker, int(fields[1]), int(fields[2]))
                    by_fid[fl.fid] = fl
                    flushes.append(fl)
                elif kind in ("A", "FD"):
                    number, t, outcome = int(fields[1]), int(fields[2]), fields[3]
                    if outcome == "ok" and kind == "A":
                        by_seq[number].ack_ns = t
                    elif outcome == "ok":
                        by_fid[number].done_ns = t
                    elif outcome not in DISCONNECTED:
                        server_errors.append(f"worker {worker} {'write' if kind == 'A' else 'flush'} {number}: {outcome}")
    return writes, flushes, server_errors
