#!/usr/bin/python3
# A client that keeps one connection busy: writes a block, reads it back, verifies, over and
# over, until the file STOP exists or the server fails a request or hangs up.
# Prints "ok N" (N verified round trips) or "error N errno=E: message", and exits 0 unless a
# read returned the wrong data (exit 2).
import os, sys, nbd

uri, stop = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.connect_uri(uri)
print("connected", flush=True)
blocks = 256
n = 0
try:
    while not os.path.exists(stop):
        offset = (n % blocks) * 4096
        data = bytes([n % 251 + 1]) * 4096
        h.pwrite(data, offset)
        if h.pread(4096, offset) != data:
            print(f"mismatch at {offset} after {n}", flush=True)
            sys.exit(2)
        n += 1
    h.flush()
    h.shutdown()
    print(f"ok {n}", flush=True)
except nbd.Error as e:
    print(f"error {n} errno={e.errno}: {e.string}", flush=True)
