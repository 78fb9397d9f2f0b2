#!/usr/bin/python3
"""durability.py [--trials N]: crash the daemon with SIGKILL while clients write, restart it,
and check that nothing made durable was lost.

Each trial: CONNECTIONS writer processes (nbdcheck/writer.py) write random blocks of 512 B to
1 MiB, some with FUA, with a FLUSH now and then, each into its own region of one encrypted
disk, journaling every write and flush (nbdcheck/journal.py) outside the daemon's state. At a
random moment (every third trial: at a moment when a FLUSH is in flight) the daemon gets
SIGKILL; it is started again on the same configuration and the whole disk is read back and
checked sector by sector (nbdcheck/verify.py). The disk is kept from trial to trial, so later
trials overwrite what earlier ones left.

Prints one line per trial and a summary line:
  durability: N trials, S sectors checked, D sector versions durable at a kill, X bytes lost
Exit status 0 when no byte was lost and the daemon answered no request with an error, 1 otherwise.

Needs Debian's python3 with python3-libnbd (#!/usr/bin/python3) and dotnet.
"""

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

import nbd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbdcheck import content, journal, verify, writer  # noqa: E402
from nbdcheck.daemon import Daemon, NbdkitMemory, find_daemon_dll, write_config  # noqa: E402

EXPORT = "durable"
MiB = 1 << 20


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--size-mib", type=int, default=64, help="disk size; each connection gets an equal region")
    p.add_argument("--sector-size", type=int, choices=[512, 4096], default=4096, help="the disk's encryption unit")
    p.add_argument("--min-delay", type=float, default=0.3, help="seconds of writing before the kill, at least")
    p.add_argument("--max-delay", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=None, help="makes the choices of a run repeatable")
    p.add_argument("--daemon", help="managed-disks.dll or its folder (default: $MANAGED_DISKS_DLL or the Release build)")
    p.add_argument("--control", action="store_true",
                   help="run against `nbdkit memory`, which loses everything at a kill: the checker must report losses")
    p.add_argument("--work", help="folder for the state, journals and log (default: a new one under /tmp, kept)")
    return p.parse_args()


class Shared:
    """What the writers and the killer share."""

    def __init__(self):
        self.started = multiprocessing.Value("i", 0)
        self.flushes_in_flight = multiprocessing.Value("i", 0)
        self.stop = multiprocessing.Event()


def run_trial(trial, args, daemon, rng, baseline, work):
    size = args.size_mib * MiB
    region = size // args.connections
    shared = Shared()
    paths = [work / f"journal-t{trial:03}-c{c}.txt" for c in range(args.connections)]
    workers = [multiprocessing.Process(target=writer.run, args=(daemon.uri(EXPORT), trial, c, (c * region, (c + 1) * region),
                                                                paths[c], rng.getrandbits(63), shared))
               for c in range(args.connections)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while shared.started.value < args.connections:
        if time.monotonic() > deadline or any(w.exitcode not in (None, 0) for w in workers):
            raise RuntimeError("the writers did not connect")
        time.sleep(0.01)

    mid_flush = trial % 3 == 0
    time.sleep(rng.uniform(args.min_delay, args.max_delay))  # the random moment of the crash
    if mid_flush:
        deadline = time.monotonic() + 10
        while shared.flushes_in_flight.value == 0 and time.monotonic() < deadline:
            pass  # spin: a flush is in flight for milliseconds only
    daemon.kill9()
    killed_at = time.monotonic()
    for w in workers:
        w.join(30)
    shared.stop.set()
    for w in workers:
        w.join(10)
        if w.is_alive():
            w.kill()
            raise RuntimeError("a writer did not notice the daemon's death")

    writes, flushes, server_errors = journal.read(paths)
    verify.mark_durable(writes, flushes)
    daemon.start()
    h = nbd.NBD()
    h.connect_uri(daemon.uri(EXPORT))
    result = verify.check(h, size, baseline, verify.sector_versions(writes))
    h.flush()  # what the disk holds now is the next trial's durable starting point
    h.shutdown()
    restart_s = time.monotonic() - killed_at

    open_flushes = sum(1 for f in flushes if f.done_ns is None)
    stats = dict(writes=len(writes), acked=sum(w.acked for w in writes), fua=sum(w.fua and w.acked for w in writes),
                 durable=sum(w.durable for w in writes), unanswered=sum(not w.acked for w in writes),
                 flushes=sum(f.done_ns is not None for f in flushes), open_flushes=open_flushes,
                 mib=sum(w.length for w in writes if w.acked) / MiB)
    print(f"trial {trial}: kill {'during a flush' if open_flushes else 'between flushes'}"
          f"{' (aimed at one)' if mid_flush else ''}; "
          f"{stats['writes']} writes ({stats['acked']} answered, {stats['fua']} FUA, {stats['durable']} durable, "
          f"{stats['unanswered']} unanswered), {stats['mib']:.1f} MiB, {stats['flushes']} flushes completed "
          f"+ {open_flushes} unanswered; {result.sectors_checked} sectors checked, "
          f"{result.sectors_with_durable_write} with a durable write, {result.sectors_newer_than_durable} newer than "
          f"durable, {result.sectors_acked_reverted} acked-unflushed reverted; bytes lost {result.bytes_lost}; "
          f"restart+check {restart_s:.1f}s", flush=True)
    for problem in result.problems:
        print("  LOST " + problem, flush=True)
    for error in server_errors[:20]:
        print("  ERROR reply from the server: " + error, flush=True)
    stats["server_errors"] = len(server_errors)
    return result, stats


def main():
    args = parse()
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="md-durability."))
    work.mkdir(parents=True, exist_ok=True)
    if args.control:
        daemon = NbdkitMemory(work, args.size_mib, work / "nbdkit.log")
    else:
        config = write_config(work, [(EXPORT, f"{args.size_mib}M", f"sector_size = {args.sector_size}")])
        daemon = Daemon(find_daemon_dll(args.daemon), config, work / "daemon.log")
    print(f"durability: {'CONTROL nbdkit memory, ' if args.control else ''}seed {seed}, {args.trials} trials, {args.connections} connections, "
          f"{args.size_mib} MiB disk, sector_size {args.sector_size}, work {work}", flush=True)

    sectors = args.size_mib * MiB // content.SECTOR
    baseline = bytearray(content.ZERO_DIGEST * sectors)  # a new disk reads as zeros
    totals = dict(checked=0, durable=0, lost=0, mid_flush=0, writes=0, mib=0.0, reverted=0, server_errors=0)
    daemon.start()
    try:
        for trial in range(1, args.trials + 1):
            result, stats = run_trial(trial, args, daemon, rng, baseline, work)
            totals["checked"] += result.sectors_checked
            totals["durable"] += result.sectors_with_durable_write
            totals["lost"] += result.bytes_lost
            totals["reverted"] += result.sectors_acked_reverted
            totals["mid_flush"] += stats["open_flushes"] > 0
            totals["writes"] += stats["writes"]
            totals["mib"] += stats["mib"]
            totals["server_errors"] += stats["server_errors"]
    finally:
        daemon.stop()
    print(f"durability: {args.trials} trials ({totals['mid_flush']} killed during a flush), {totals['writes']} writes "
          f"({totals['mib']:.0f} MiB answered), {totals['checked']} sectors checked, "
          f"{totals['durable']} sectors with a durable write, {totals['reverted']} acked-unflushed reverted, "
          f"{totals['server_errors']} error replies, {totals['lost']} bytes lost")
    return 1 if totals["lost"] or totals["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
