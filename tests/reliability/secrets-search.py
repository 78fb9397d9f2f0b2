#!/usr/bin/python3
"""Searches a ManagedDisks daemon's files, logs and core dumps for its secrets.

For each disk it unwraps the DEK from `managed-disks disk show --json` with the known private
keys (python3-cryptography, none of the daemon's code), then derives what a process using that
DEK may hold in memory: the DEK and its two XTS halves; for each half the AES-256 encryption key
schedule and the decryption schedule of the equivalent inverse cipher (FIPS-197 5.3.5, what
AES-NI's AESDEC uses: InvMixColumns of round keys 13..1); the DEK as hex and base64 text.
For each private key: PKCS#8 and PKCS#1 DER, and d, p, q, dP, dQ, qInv as big-endian
bytes (.NET, DER) and little-endian bytes (OpenSSL's BIGNUM limbs on x86-64).

Every needle is searched as a byte string, and every round key also alone (16 bytes), in the
given files and folders (recursively): backing files, logs, the audit log, the state folder,
core dumps. --expect absent (the default) exits 1 if anything is found; --expect present exits
1 unless the round keys of every disk are found (the positive control: a core dump taken while
disks are attached must show them, or the search proves nothing).

Large files are scanned with numpy: each needle of 16+ bytes contains, at one of its first 8
offsets, an 8-byte word that is 8-aligned in the file; the file's aligned words are looked up
in the sorted set of those words (searchsorted), and each candidate is compared in full.
"""
import argparse
import base64
import json
import mmap
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

# --- AES-256 key schedules (FIPS-197 section 5.2 and 5.3.5) -------------------------------

def _sbox():
    sbox = [0] * 256
    p = q = 1
    while True:  # p runs over the multiplicative group, q = p^-1 (FIPS-197 5.1.1)
        p = p ^ ((p << 1) & 0xFF) ^ (0x1B if p & 0x80 else 0)
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ ((q << 1 | q >> 7) & 0xFF) ^ ((q << 2 | q >> 6) & 0xFF) ^ ((q << 3 | q >> 5) & 0xFF) ^ ((q << 4 | q >> 4) & 0xFF)
        sbox[p] = x ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    return sbox


SBOX = _sbox()


def xtime(b):
    return ((b << 1) ^ 0x1B) & 0xFF if b & 0x80 else b << 1


def gmul(a, b):
    result = 0
    while b:
        if b & 1:
            result ^= a
        a = xtime(a)
        b >>= 1
    return result


def expand_key_256(key):
    """The 15 round keys of AES-256 encryption, 16 bytes each."""
    assert len(key) == 32
    words = [list(key[i:i + 4]) for i in range(0, 32, 4)]
    rcon = 1
    for i in range(8, 60):
        t = list(words[i - 1])
        if i % 8 == 0:
            t = [SBOX[b] for b in t[1:] + t[:1]]
            t[0] ^= rcon
            rcon = xtime(rcon)
        elif i % 8 == 4:
            t = [SBOX[b] for b in t]
        words.append([a ^ b for a, b in zip(words[i - 8], t)])
    flat = bytes(b for w in words for b in w)
    return [flat[16 * r:16 * r + 16] for r in range(15)]


def inv_mix_columns(block):
    out = bytearray(16)
    for c in range(4):
        a = block[4 * c:4 * c + 4]
        for r in range(4):
            out[4 * c + r] = gmul(a[r], 14) ^ gmul(a[(r + 1) % 4], 11) ^ gmul(a[(r + 2) % 4], 13) ^ gmul(a[(r + 3) % 4], 9)
    return bytes(out)


def decryption_schedule(encryption):
    """The equivalent inverse cipher's round keys in the order AESDEC uses them."""
    return [encryption[14]] + [inv_mix_columns(encryption[r]) for r in range(13, 0, -1)] + [encryption[0]]


def self_test():
    # FIPS-197 Appendix A.3: the AES-256 expansion of 603deb10...; w[8] and w[59].
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    schedule = expand_key_256(key)
    assert schedule[2][:4] == bytes.fromhex("9ba35411"), "AES-256 key expansion is wrong (w[8])"
    assert schedule[14][12:] == bytes.fromhex("706c631e"), "AES-256 key expansion is wrong (w[59])"
    # InvMixColumns undoes MixColumns (FIPS-197 5.1.3 example column db 13 53 45 -> 8e 4d a1 bc).
    assert inv_mix_columns(bytes.fromhex("8e4da1bc" * 4)) == bytes.fromhex("db135345" * 4), "InvMixColumns is wrong"


# --- the secrets -------------------------------------------------------------------------

def load_private_key(spec):
    """NAME=PEM or NAME=PEM:PASSPHRASE_FILE"""
    name, _, rest = spec.partition("=")
    pem, _, secret = rest.partition(":")
    password = open(secret, "rb").read().strip() if secret else None
    return name, serialization.load_pem_private_key(open(pem, "rb").read(), password=password)


def unwrap(wrapped, keys):
    for _, key in keys:
        for digest in (hashes.SHA256(), hashes.SHA1()):
            try:
                return key.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
            except ValueError:
                continue
    raise SystemExit("no given private key unwraps the DEK: pass the key that wraps it with --private-key")


def disk_deks(cli, config, disks, keys):
    deks = {}
    for disk in disks:
        shown = json.loads(subprocess.run(cli + ["disk", "show", disk, "--config", config, "--json"], check=True, capture_output=True, text=True).stdout)
        slot = shown["key_slots"][0]
        deks[disk] = unwrap(base64.b64decode(slot["wrapped_dek"]), keys)
        assert len(deks[disk]) == 64, f"{disk}: the DEK is {len(deks[disk])} bytes, not 64"
    return deks


def be(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def le_limbs(n):
    # OpenSSL keeps a BIGNUM as 64-bit limbs, least significant first: whole limbs, little-endian.
    length = ((n.bit_length() + 63) // 64) * 8
    return n.to_bytes(length, "little")


def needles_for(deks, keys):
    """(family, what, bytes): the family says which secret a hit betrays."""
    needles = []
    for disk, dek in deks.items():
        family = f"DEK of {disk}"
        needles += [(family, "DEK", dek), (family, "XTS key 1", dek[:32]), (family, "XTS key 2", dek[32:]),
                    (family, "DEK as hex", dek.hex().encode()), (family, "DEK as HEX", dek.hex().upper().encode()),
                    (family, "DEK as base64", base64.b64encode(dek))]
        for half, key in (("key 1", dek[:32]), ("key 2", dek[32:])):
            enc = expand_key_256(key)
            dec = decryption_schedule(enc)
            needles += [(f"round keys of {disk}", f"{half} encryption schedule", b"".join(enc)),
                        (f"round keys of {disk}", f"{half} decryption schedule", b"".join(dec))]
            needles += [(f"round keys of {disk}", f"{half} encryption round key {r}", rk) for r, rk in enumerate(enc)]
            needles += [(f"round keys of {disk}", f"{half} decryption round key {r}", rk) for r, rk in enumerate(dec)]
    for name, key in keys:
        family = f"private key {name}"
        needles += [(family, "PKCS#8 DER", key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
                    (family, "PKCS#1 DER", key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))]
        numbers = key.private_numbers()
        for what, n in (("d", numbers.d), ("p", numbers.p), ("q", numbers.q), ("dP", numbers.dmp1), ("dQ", numbers.dmq1), ("qInv", numbers.iqmp)):
            needles += [(family, f"{what} big-endian", be(n)), (family, f"{what} little-endian", le_limbs(n))]
    # Identical byte strings (round key 0 is XTS key 1's first half...) are searched once.
    unique = {}
    for family, what, data in needles:
        assert len(data) >= 16, f"{what} is shorter than the 16 bytes the search needs"
        unique.setdefault(data, (family, what))
    return [(family, what, data) for data, (family, what) in unique.items()]


# --- the search ----------------------------------------------------------------------------

class Searcher:
    CHUNK_WORDS = 8 << 20  # 64 MiB of the file per numpy pass

    def __init__(self, needles):
        self.needles = needles
        by_word = defaultdict(list)
        for index, (_, what, data) in enumerate(needles):
            for shift in range(8):
                word = int.from_bytes(data[shift:shift + 8], "little")
                if word == 0:
                    raise SystemExit(f"{what} has 8 zero bytes in a row, which this search cannot anchor on")
                by_word[word].append((index, shift))
        self.by_word = by_word
        self.words = np.array(sorted(by_word), dtype="<u8")

    def search(self, path):
        """Yields (needle index, offset) for every occurrence in the file."""
        size = os.path.getsize(path)
        if size < 16:
            return
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            total_words = size // 8
            seen = set()
            for start in range(0, total_words, self.CHUNK_WORDS):
                count = min(self.CHUNK_WORDS, total_words - start)
                words = np.frombuffer(data, dtype="<u8", count=count, offset=start * 8)
                at = np.searchsorted(self.words, words)
                np.minimum(at, len(self.words) - 1, out=at)
                hits = [(start + int(i), int(words[i])) for i in np.nonzero(self.words[at] == words)[0]]
                del words, at  # numpy views pin the mmap: release them before it closes
                for word_index, word in hits:
                    for index, shift in self.by_word[word]:
                        needle = self.needles[index][2]
                        offset = word_index * 8 - shift
                        if offset >= 0 and (index, offset) not in seen and data[offset:offset + len(needle)] == needle:
                            seen.add((index, offset))
                            yield index, offset
            # The last few bytes are not a whole aligned word: search them plainly.
            tail_start = max(0, total_words * 8 - 256)
            tail = data[tail_start:]
            for index, (_, _, needle) in enumerate(self.needles):
                found = tail.find(needle)
                while found >= 0:
                    if (index, tail_start + found) not in seen:
                        seen.add((index, tail_start + found))
                        yield index, tail_start + found
                    found = tail.find(needle, found + 1)


def files_under(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                for name in sorted(names):
                    full = os.path.join(root, name)
                    if os.path.isfile(full) and not os.path.islink(full):
                        yield full
        elif os.path.isfile(path):
            yield path
        else:
            raise SystemExit(f"{path} does not exist")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", required=True, help="how to run managed-disks, e.g. 'dotnet /path/managed-disks.dll'")
    parser.add_argument("--config", required=True)
    parser.add_argument("--disk", action="append", required=True, help="a disk whose DEK to look for (repeat)")
    parser.add_argument("--private-key", action="append", required=True,
                        help="NAME=PEM[:PASSPHRASE_FILE], a known private key: it unwraps DEKs and is looked for (repeat)")
    parser.add_argument("--expect", choices=["absent", "present"], default="absent")
    parser.add_argument("--json", help="write the findings here")
    parser.add_argument("paths", nargs="+", help="files and folders to search")
    args = parser.parse_args()

    self_test()
    keys = [load_private_key(spec) for spec in args.private_key]
    deks = disk_deks(args.cli.split(), args.config, args.disk, keys)
    needles = needles_for(deks, keys)
    searcher = Searcher(needles)

    findings = []
    scanned = 0
    files = 0
    for path in files_under(args.paths):
        files += 1
        scanned += os.path.getsize(path)
        for index, offset in searcher.search(path):
            family, what, _ = needles[index]
            findings.append({"file": path, "offset": offset, "secret": family, "as": what})

    families = sorted({f["secret"] for f in findings})
    print(f"searched {files} files, {scanned} bytes, for {len(needles)} byte strings of {len(deks)} DEK(s) and {len(keys)} private key(s)")
    for finding in findings[:50]:
        print(f"FOUND {finding['secret']} ({finding['as']}) in {finding['file']} at {finding['offset']}")
    if len(findings) > 50:
        print(f"... and {len(findings) - 50} more")
    print(f"secrets found: {', '.join(families) if families else 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": files, "bytes": scanned, "needles": len(needles), "findings": findings}, f, indent=1)

    if args.expect == "absent":
        return 1 if findings else 0
    missing = [disk for disk in deks if f"round keys of {disk}" not in families]
    if missing:
        print(f"positive control failed: no round keys of {', '.join(missing)} found")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
