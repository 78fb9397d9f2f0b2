# Option negotiation driven step by step (libnbd option mode). Run inside nbdsh with URI set.
# EXPORTS (JSON, optional) describes every export the server must list:
#   {"disk0": {"size": 67108864, "description": "..."}, "disk1": {...}}
# Without it, only the export named in URI is checked.
import json
import os
import socket
import struct
import urllib.parse

import nbd

uri = os.environ['URI']
parsed = urllib.parse.urlparse(uri)
own_export = urllib.parse.unquote(parsed.path.lstrip('/'))
expected = json.loads(os.environ['EXPORTS']) if os.environ.get('EXPORTS') else None

h = nbd.NBD()
h.set_opt_mode(True)
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
assert h.aio_is_negotiating(), "not paused in negotiation"
assert h.get_protocol() == 'newstyle-fixed', h.get_protocol()
assert h.get_structured_replies_negotiated(), "structured replies were refused"

# --- NBD_OPT_LIST -------------------------------------------------------------------------
listed = {}


def on_export(name, description):
    assert name not in listed, f"export {name} listed twice"
    listed[name] = description
    return 0


count = h.opt_list(on_export)
assert count == len(listed), (count, listed)
assert own_export in listed, f"{own_export} not in {listed}"
if expected is not None:
    assert set(listed) == set(expected), f"listed {sorted(listed)}, expected {sorted(expected)}"
    for name, info in expected.items():
        assert listed[name] == info.get('description', ''), f"description of {name}: {listed[name]!r}"
# LIST can be repeated and gives the same answer
again = {}
h.opt_list(lambda n, d: again.__setitem__(n, d) or 0)
assert again == listed, (again, listed)

# --- NBD_OPT_LIST_META_CONTEXT ------------------------------------------------------------


def list_contexts(queries):
    h.clear_meta_contexts()
    for q in queries:
        h.add_meta_context(q)
    found = []
    n = h.opt_list_meta_context(lambda name: found.append(name) or 0)
    assert n == len(found), (n, found)
    return found


h.set_export_name(own_export)
assert list_contexts([]) == [nbd.CONTEXT_BASE_ALLOCATION], "listing all contexts"
assert list_contexts([nbd.CONTEXT_BASE_ALLOCATION]) == [nbd.CONTEXT_BASE_ALLOCATION]
assert list_contexts(['base:']) == [nbd.CONTEXT_BASE_ALLOCATION], "namespace query base:"
assert list_contexts(['x-foo:bar']) == [], "an unknown namespace must be ignored"
assert list_contexts(['base:nonesuch']) == [], "an unknown leaf in base: must be ignored"
assert list_contexts(['x-foo:bar', nbd.CONTEXT_BASE_ALLOCATION]) == [nbd.CONTEXT_BASE_ALLOCATION]
h.clear_meta_contexts()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)

# --- NBD_OPT_INFO for every export --------------------------------------------------------
h.set_full_info(True)
for name in sorted(listed):
    h.set_export_name(name)
    h.opt_info()
    assert h.aio_is_negotiating(), "INFO left negotiation"
    if expected is not None:
        assert h.get_size() == expected[name]['size'], f"size of {name}: {h.get_size()}"
    assert h.get_size() > 0, f"size of {name} is 0 (nbd-server's INFO bug)"
    assert not h.is_read_only(), f"{name} read-only"
    for cap in ['flush', 'fua', 'trim', 'zero', 'fast_zero', 'df', 'multi_conn', 'cache']:
        assert getattr(h, 'can_' + cap)(), f"INFO for {name}: can_{cap} is false"
    assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), f"INFO for {name}: no base:allocation"
    # encrypted disks: 512-byte addressing, 4K sectors
    assert h.get_block_size(nbd.SIZE_MINIMUM) == 512, h.get_block_size(nbd.SIZE_MINIMUM)
    assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
    assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * 1024 * 1024
    assert h.get_canonical_export_name() == name, h.get_canonical_export_name()
    if listed[name]:
        assert h.get_export_description() == listed[name], (h.get_export_description(), listed[name])
    info_size = h.get_size()

# --- unknown export: INFO and GO fail with ERR_UNKNOWN, negotiation goes on --------------
h.set_export_name('no-such-disk')
for what, fn in [('INFO', h.opt_info), ('GO', h.opt_go)]:
    try:
        fn()
    except nbd.Error as e:
        # libnbd reports NBD_REP_ERR_UNKNOWN as ENOENT
        assert e.errno == 'ENOENT', f"{what} on an unknown export: {e.errno} ({e.string})"
    else:
        raise AssertionError(f"{what} on an unknown export succeeded")
    assert h.aio_is_negotiating(), f"{what} on an unknown export ended negotiation"
assert h.opt_list(lambda n, d: 0) == len(listed), "LIST after refused options"

# --- GO on the export of the URI ----------------------------------------------------------
h.set_export_name(own_export)
h.opt_info()
size = h.get_size()
h.opt_go()
assert h.aio_is_ready(), "GO did not enter transmission"
assert h.get_size() == size, "GO and INFO disagree about the size"
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.get_canonical_export_name() == own_export
assert [h.get_block_size(t) for t in (nbd.SIZE_MINIMUM, nbd.SIZE_PREFERRED, nbd.SIZE_MAXIMUM)] == [512, 4096, 32 * 1024 * 1024], \
    "GO and INFO disagree about the block sizes"
data = os.urandom(4096)
h.pwrite(data, 0)
assert h.pread(4096, 0) == data
got = []
h.block_status(4096, 0, lambda ctx, off, entries, err: got.append((ctx, list(entries))) or 0)
assert got == [(nbd.CONTEXT_BASE_ALLOCATION, [4096, 0])], got
h.shutdown()

# --- GO after structured replies were declined: no DF, no meta context ---------------------
h3 = nbd.NBD()
h3.set_opt_mode(True)
h3.set_request_structured_replies(False)
h3.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h3.connect_uri(uri)
assert not h3.get_structured_replies_negotiated()
h3.opt_go()
assert not h3.can_df(), "DF advertised without structured replies"
assert not h3.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h3.pread(4096, 0) == data
h3.shutdown()

# --- NBD_OPT_ABORT in a separate handle ---------------------------------------------------
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri(uri)
assert h2.aio_is_negotiating()
h2.opt_abort()
assert h2.aio_is_closed(), "ABORT did not close the connection"

# --- SET_META_CONTEXT before STRUCTURED_REPLY, on the wire ---------------------------------
# libnbd 1.14 has no opt_set_meta_context and never sends SET without structured replies,
# so this part speaks the handshake itself (Unix socket or TCP from the URI).
if parsed.scheme == 'nbd+unix':
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(urllib.parse.parse_qs(parsed.query)['socket'][0])
else:
    sock = socket.create_connection((parsed.hostname, parsed.port or 10809))
sock.settimeout(10)


def recv_exact(n):
    buf = b''
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        assert part, f"server closed the connection (wanted {n} bytes, had {len(buf)})"
        buf += part
    return buf


IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x0003e889045565a9
OPT_ABORT, OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT = 2, 8, 10
REP_ACK, REP_META_CONTEXT, REP_ERR_INVALID = 1, 4, 2 ** 31 + 3


def send_option(option, data=b''):
    sock.sendall(struct.pack('>QII', IHAVEOPT, option, len(data)) + data)


def read_reply(option):
    magic, opt, rtype, length = struct.unpack('>QIII', recv_exact(20))
    assert magic == REPLY_MAGIC, hex(magic)
    assert opt == option, (opt, option)
    return rtype, recv_exact(length)


def set_meta_payload(export, queries):
    name = export.encode()
    body = struct.pack('>I', len(name)) + name + struct.pack('>I', len(queries))
    for q in queries:
        body += struct.pack('>I', len(q)) + q.encode()
    return body


passwd, magic, gflags = struct.unpack('>QQH', recv_exact(18))
assert passwd == 0x4e42444d41474943 and magic == IHAVEOPT, (hex(passwd), hex(magic))
assert gflags & 1, "server is not fixed newstyle"
sock.sendall(struct.pack('>I', 1 | (gflags & 2)))
set_meta = set_meta_payload(own_export, [nbd.CONTEXT_BASE_ALLOCATION])
send_option(OPT_SET_META_CONTEXT, set_meta)
rtype, _ = read_reply(OPT_SET_META_CONTEXT)
assert rtype == REP_ERR_INVALID, f"SET_META_CONTEXT before STRUCTURED_REPLY: reply type {rtype:#x}, expected ERR_INVALID"
send_option(OPT_STRUCTURED_REPLY)
assert read_reply(OPT_STRUCTURED_REPLY)[0] == REP_ACK
send_option(OPT_SET_META_CONTEXT, set_meta)
rtype, body = read_reply(OPT_SET_META_CONTEXT)
assert rtype == REP_META_CONTEXT, f"SET_META_CONTEXT after STRUCTURED_REPLY: reply type {rtype:#x}"
assert body[4:].decode() == nbd.CONTEXT_BASE_ALLOCATION, body
assert read_reply(OPT_SET_META_CONTEXT)[0] == REP_ACK
send_option(OPT_ABORT)
assert read_reply(OPT_ABORT)[0] == REP_ACK
sock.close()

print('OK optmode')
