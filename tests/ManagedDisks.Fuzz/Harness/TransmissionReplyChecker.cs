using System.Buffers.Binary;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Checks the replies of a transmission phase against the requests the client sent: every
/// request before the end of framing (DISC, a bad magic, an oversized WRITE, end of stream) is
/// answered exactly once, and only those; replies are well framed; a successful READ returns
/// exactly its range (data and hole chunks inside it, no overlap, no gap), a READ under
/// structured replies gets no simple reply; block status describes at most the range asked,
/// one extent with REQ_ONE; error numbers are the protocol's. Inputs that reuse a cookie are
/// only checked for termination: their replies cannot be told apart.
/// </summary>
internal static class TransmissionReplyChecker
{
    private sealed record Pending(NbdCommand Command, CommandFlags Flags, ulong Offset, uint Length)
    {
        public long Covered;
        public bool Failed;
    }

    private static readonly HashSet<uint> KnownErrors = [.. Enum.GetValues<NbdError>().Select(e => (uint)e)];

    public static void Check(ReadOnlySpan<byte> client, ReadOnlySpan<byte> server, bool structured, uint maxPayload)
    {
        var pending = Requests(client, maxPayload);
        if (pending is null) return;

        int position = 0;
        while (position < server.Length)
        {
            var rest = server[position..];
            if (rest.Length < 4) throw new FuzzFinding("truncated reply");
            uint magic = BinaryPrimitives.ReadUInt32BigEndian(rest);
            if (magic == NbdMagic.SimpleReply) position += SimpleReply(rest, pending, structured);
            else if (magic == NbdMagic.StructuredReply) position += Chunk(rest, pending, structured);
            else throw new FuzzFinding($"unknown reply magic {magic:x8} at byte {position}");
        }
        if (pending.Count > 0) throw new FuzzFinding($"{pending.Count} request(s) never answered, e.g. cookie {pending.Keys.First()}");
    }

    /// <summary>The requests a server must answer, by cookie; null when a cookie repeats.</summary>
    private static Dictionary<ulong, Pending>? Requests(ReadOnlySpan<byte> client, uint maxPayload)
    {
        var requests = new Dictionary<ulong, Pending>();
        int position = 0;
        while (client.Length - position >= NbdLimits.RequestHeaderLength)
        {
            var header = client[position..];
            if (BinaryPrimitives.ReadUInt32BigEndian(header) != NbdMagic.Request) break;
            var flags = (CommandFlags)BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
            var command = (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(header[6..]);
            ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header[8..]);
            ulong offset = BinaryPrimitives.ReadUInt64BigEndian(header[16..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header[24..]);
            long frame = NbdLimits.RequestHeaderLength + (command == NbdCommand.Write ? (long)length : 0);
            if (command == NbdCommand.Write && length > maxPayload) break;
            if (frame > client.Length - position) break;
            if (command == NbdCommand.Disconnect) break;
            if (!requests.TryAdd(cookie, new Pending(command, flags, offset, length))) return null;
            position += (int)frame;
        }
        return requests;
    }

    private static int SimpleReply(ReadOnlySpan<byte> rest, Dictionary<ulong, Pending> pending, bool structured)
    {
        if (rest.Length < NbdLimits.SimpleReplyHeaderLength) throw new FuzzFinding("truncated simple reply");
        uint error = BinaryPrimitives.ReadUInt32BigEndian(rest[4..]);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(rest[8..]);
        if (!KnownErrors.Contains(error)) throw new FuzzFinding($"error {error} is not an NBD error");
        if (!pending.Remove(cookie, out var request)) throw new FuzzFinding($"simple reply for cookie {cookie}, which is not pending");
        int length = NbdLimits.SimpleReplyHeaderLength;
        if (request.Command == NbdCommand.Read)
        {
            if (structured) throw new FuzzFinding("simple reply to a READ after structured replies were negotiated");
            if (error == 0) length += (int)request.Length;
        }
        if (rest.Length < length) throw new FuzzFinding("READ reply shorter than the read");
        return length;
    }

    private static int Chunk(ReadOnlySpan<byte> rest, Dictionary<ulong, Pending> pending, bool structured)
    {
        if (!structured) throw new FuzzFinding("structured reply that was never negotiated");
        if (rest.Length < NbdLimits.ChunkHeaderLength) throw new FuzzFinding("truncated chunk header");
        var flags = (ReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(rest[4..]);
        var type = (ChunkType)BinaryPrimitives.ReadUInt16BigEndian(rest[6..]);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(rest[8..]);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(rest[16..]);
        if (rest.Length - NbdLimits.ChunkHeaderLength < length) throw new FuzzFinding("chunk longer than what was sent");
        if (!pending.TryGetValue(cookie, out var request)) throw new FuzzFinding($"chunk for cookie {cookie}, which is not pending");
        var payload = rest.Slice(NbdLimits.ChunkHeaderLength, (int)length);

        switch (type)
        {
            case ChunkType.OffsetData when request.Command == NbdCommand.Read && payload.Length >= 8:
                Cover(request, BinaryPrimitives.ReadUInt64BigEndian(payload), payload.Length - 8);
                break;
            case ChunkType.OffsetHole when request.Command == NbdCommand.Read && payload.Length == 12:
                Cover(request, BinaryPrimitives.ReadUInt64BigEndian(payload), BinaryPrimitives.ReadUInt32BigEndian(payload[8..]));
                break;
            case ChunkType.BlockStatus when request.Command == NbdCommand.BlockStatus:
                CheckBlockStatus(request, payload);
                break;
            case ChunkType.Error when payload.Length >= 6 && payload.Length == 6 + BinaryPrimitives.ReadUInt16BigEndian(payload[4..]):
                uint error = BinaryPrimitives.ReadUInt32BigEndian(payload);
                if (error == 0 || !KnownErrors.Contains(error)) throw new FuzzFinding($"error chunk with error {error}");
                request.Failed = true;
                break;
            default:
                throw new FuzzFinding($"chunk type {(ushort)type} of {payload.Length} bytes for {request.Command}");
        }
        if ((flags & ReplyFlags.Done) != 0)
        {
            if (request.Command == NbdCommand.Read && !request.Failed && request.Covered != request.Length)
                throw new FuzzFinding($"READ of {request.Length} bytes answered with {request.Covered}");
            pending.Remove(cookie);
        }
        return NbdLimits.ChunkHeaderLength + (int)length;
    }

    /// <summary>Chunks come in order here (one request is served by one task), so coverage must be contiguous.</summary>
    private static void Cover(Pending request, ulong offset, long length)
    {
        if (length <= 0 || offset != request.Offset + (ulong)request.Covered || request.Covered + length > request.Length)
            throw new FuzzFinding($"READ chunk {offset}+{length} does not continue {request.Offset}+{request.Covered} within {request.Length}");
        request.Covered += length;
    }

    private static void CheckBlockStatus(Pending request, ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 12 || (payload.Length - 4) % 8 != 0) throw new FuzzFinding($"block status chunk of {payload.Length} bytes");
        if (BinaryPrimitives.ReadUInt32BigEndian(payload) != NbdLimits.BaseAllocationId) throw new FuzzFinding("block status for a context never selected");
        int count = (payload.Length - 4) / 8;
        if ((request.Flags & CommandFlags.ReqOne) != 0 && count != 1) throw new FuzzFinding($"{count} extents despite REQ_ONE");
        // Only the last extent may reach past the range asked (spec, NBD_CMD_BLOCK_STATUS).
        long beforeLast = 0;
        for (int i = 0; i < count; i++)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(payload[(4 + 8 * i)..]);
            if (length == 0) throw new FuzzFinding("an extent of length zero");
            if (i < count - 1) beforeLast += length;
        }
        if (beforeLast >= request.Length) throw new FuzzFinding($"extents after the end of a {request.Length}-byte request");
    }
}
