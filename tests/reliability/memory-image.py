#!/usr/bin/python3
"""Copies every readable page of a process into one file, for secrets-search.py.

gcore honours MADV_DONTDUMP, which the daemon sets on its key pages so that crash dumps leave
them out; `set dump-excluded-mappings on` includes them but also writes out the hundreds of
gigabytes the .NET GC reserves (also DONTDUMP). This reads /proc/PID/mem instead: every mapping
that is readable, DONTDUMP or not, and nothing that is only reserved (PROT_NONE). Needs ptrace
rights over the process (root, or the same user with ptrace_scope 0). Regions that cannot be read
([vvar], pages unmapped meanwhile) are skipped and counted. OUTPUT.regions lists where each region
went ("image offset, address range, permissions, mapping"), to tell where a finding lives.

    memory-image.py PID OUTPUT
"""
import sys


def main():
    pid, output = int(sys.argv[1]), sys.argv[2]
    copied = regions = skipped = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem, open(output, "wb") as out, \
            open(output + ".regions", "w") as index:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if fields[1][0] != "r" or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            index.write(f"{copied} {fields[0]} {fields[1]} {fields[5] if len(fields) > 5 else '[anonymous]'}\n")
            position = start
            while position < end:
                length = min(end - position, 64 << 20)
                try:
                    mem.seek(position)
                    data = mem.read(length)
                except OSError:
                    skipped += 1
                    break
                out.write(data)
                copied += len(data)
                position += length
            regions += 1
    print(f"copied {copied} bytes from {regions} readable regions of process {pid} ({skipped} unreadable)")


if __name__ == "__main__":
    main()
