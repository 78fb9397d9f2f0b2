using System.Buffers;
using System.Buffers.Binary;
using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Target "request": an arbitrary transmission-phase byte stream through <see cref="RequestParser"/>,
/// framed frame after frame as the connection loop does, in one segment and in many. Each framed
/// request then goes through <see cref="RequestValidator"/> for a writable and a read-only export.
/// Promises checked: the same frames whatever the segmentation; a frame is 28 bytes plus a WRITE's
/// payload; NeedMoreData only when the frame is really incomplete; BadMagic only for a wrong magic;
/// PayloadTooLarge only for a WRITE over the limit; an accepted request lies inside the export,
/// within the payload limit and aligned to the minimum block size.
/// </summary>
public static class RequestParserTarget
{
    // The real limit, and a small one so that PayloadTooLarge is easy for the fuzzer to reach.
    private static readonly uint[] WriteLimits = [32 * 1024 * 1024, 4096];

    public static void Run(byte[] input)
    {
        foreach (uint limit in WriteLimits)
        {
            var whole = Frames(new ReadOnlySequence<byte>(input), input, limit);
            var pieces = Frames(Chunked.Split(input, Chunked.SizeFor(input)), input, limit);
            if (!whole.SequenceEqual(pieces))
                throw new FuzzFinding($"segmentation changed the frames: [{string.Join("; ", whole)}] vs [{string.Join("; ", pieces)}]");
        }
    }

    private static List<string> Frames(ReadOnlySequence<byte> buffer, byte[] input, uint limit)
    {
        var frames = new List<string>();
        long offset = 0;
        while (true)
        {
            var status = RequestParser.TryParse(buffer, limit, out var request, out var payload, out var consumed);
            ReadOnlySpan<byte> rest = input.AsSpan((int)offset);
            switch (status)
            {
                case ParseStatus.Complete:
                    long frameLength = buffer.Slice(buffer.Start, consumed).Length;
                    long expected = NbdLimits.RequestHeaderLength + (request.Command == NbdCommand.Write ? request.Length : 0);
                    if (frameLength != expected) throw new FuzzFinding($"consumed {frameLength} bytes for a frame of {expected}");
                    if (request.Command == NbdCommand.Write && !payload.ToArray().AsSpan().SequenceEqual(rest.Slice(NbdLimits.RequestHeaderLength, (int)request.Length)))
                        throw new FuzzFinding("the WRITE payload is not the bytes after the header");
                    if (request.Command != NbdCommand.Write && !payload.IsEmpty) throw new FuzzFinding("a payload for a command that has none");
                    CheckValidation(request);
                    frames.Add($"{request} payload {payload.Length}");
                    buffer = buffer.Slice(consumed);
                    offset += frameLength;
                    break;
                case ParseStatus.NeedMoreData:
                    if (rest.Length >= NbdLimits.RequestHeaderLength && BinaryPrimitives.ReadUInt32BigEndian(rest) != NbdMagic.Request)
                        throw new FuzzFinding("NeedMoreData for a header with a wrong magic");
                    if (rest.Length >= NbdLimits.RequestHeaderLength && BinaryPrimitives.ReadUInt16BigEndian(rest[6..]) != (ushort)NbdCommand.Write)
                        throw new FuzzFinding("NeedMoreData for a complete header without payload");
                    if (rest.Length >= NbdLimits.RequestHeaderLength && rest.Length >= NbdLimits.RequestHeaderLength + (long)BinaryPrimitives.ReadUInt32BigEndian(rest[24..]))
                        throw new FuzzFinding("NeedMoreData with the whole WRITE frame present");
                    frames.Add("need more data");
                    return frames;
                case ParseStatus.BadMagic:
                    if (BinaryPrimitives.ReadUInt32BigEndian(rest) == NbdMagic.Request) throw new FuzzFinding("BadMagic for the right magic");
                    frames.Add("bad magic");
                    return frames;
                case ParseStatus.PayloadTooLarge:
                    if (BinaryPrimitives.ReadUInt16BigEndian(rest[6..]) != (ushort)NbdCommand.Write || BinaryPrimitives.ReadUInt32BigEndian(rest[24..]) <= limit)
                        throw new FuzzFinding("PayloadTooLarge for a frame within the limit");
                    frames.Add("payload too large");
                    return frames;
                default:
                    throw new FuzzFinding($"unknown parse status {status}");
            }
        }
    }

    private static readonly (BlockDeviceCapabilities Caps, long Size)[] Exports =
    [
        (FuzzExports.Writable, 1 << 20),
        (FuzzExports.ReadOnly, 64 * 1024),
        (FuzzExports.Writable, 0),
    ];

    /// <summary>What the validator lets through, a device may assume: in range, within limits, aligned, allowed.</summary>
    private static void CheckValidation(in NbdRequest request)
    {
        foreach (var (caps, size) in Exports)
        foreach (bool structured in (bool[])[false, true])
        foreach (bool metaContext in (bool[])[false, true])
        {
            var flags = ExportFlags.For(caps, structured);
            var (error, reason) = RequestValidator.Validate(request, flags, caps, size, metaContext);
            if (error != NbdError.None)
            {
                if (string.IsNullOrEmpty(reason)) throw new FuzzFinding($"{request}: error {error} without a reason");
                continue;
            }
            FuzzExports.CheckAcceptable(request, caps, size, metaContext);
        }
    }
}
