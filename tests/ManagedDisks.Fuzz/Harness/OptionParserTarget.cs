using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Target "option": an arbitrary handshake-phase byte stream (client flags, then options) through
/// <see cref="OptionParser"/>, in one segment and in many, and every option's data through both
/// payload decoders (<see cref="ExportInfoRequest"/>, <see cref="MetaContextRequest"/>), whatever
/// the option says it is. Promises checked: framing independent of segmentation and exactly
/// <c>16 + length</c> bytes; lengths over the limit refused before their data arrives; a decoder
/// either returns a value or a reason, never both or neither; what it returns encodes back to
/// exactly the bytes it came from, with names within the 4096-byte limit.
/// </summary>
public static class OptionParserTarget
{
    public static void Run(byte[] input)
    {
        var whole = Frames(new ReadOnlySequence<byte>(input), input);
        var pieces = Frames(Chunked.Split(input, Chunked.SizeFor(input)), input);
        if (!whole.SequenceEqual(pieces))
            throw new FuzzFinding($"segmentation changed the frames: [{string.Join("; ", whole)}] vs [{string.Join("; ", pieces)}]");
    }

    private static List<string> Frames(ReadOnlySequence<byte> buffer, byte[] input)
    {
        var frames = new List<string>();
        if (OptionParser.TryParseClientFlags(buffer, out uint flags, out var afterFlags) != ParseStatus.Complete)
        {
            if (input.Length >= 4) throw new FuzzFinding("client flags not parsed from 4 bytes");
            return frames;
        }
        if (flags != BinaryPrimitives.ReadUInt32BigEndian(input)) throw new FuzzFinding("client flags misread");
        buffer = buffer.Slice(afterFlags);
        long offset = 4;
        while (true)
        {
            var status = OptionParser.TryParseOption(buffer, NbdLimits.MaxOptionLength, out uint option, out var data, out var consumed);
            ReadOnlySpan<byte> rest = input.AsSpan((int)offset);
            if (status != ParseStatus.Complete)
            {
                CheckRefusal(status, rest);
                frames.Add(status.ToString());
                return frames;
            }
            long frameLength = buffer.Slice(buffer.Start, consumed).Length;
            if (frameLength != NbdLimits.OptionHeaderLength + data.Length) throw new FuzzFinding($"consumed {frameLength} bytes for {data.Length} bytes of data");
            byte[] bytes = data.ToArray();
            if (!bytes.AsSpan().SequenceEqual(rest.Slice(NbdLimits.OptionHeaderLength, bytes.Length))) throw new FuzzFinding("option data is not the bytes after the header");
            frames.Add($"option {option} data {bytes.Length}: {DecodeExportInfo(bytes)} / {DecodeMetaContext(bytes)}");
            buffer = buffer.Slice(consumed);
            offset += frameLength;
        }
    }

    private static void CheckRefusal(ParseStatus status, ReadOnlySpan<byte> rest)
    {
        bool header = rest.Length >= NbdLimits.OptionHeaderLength;
        bool magicOk = header && BinaryPrimitives.ReadUInt64BigEndian(rest) == NbdMagic.IHaveOpt;
        uint length = header ? BinaryPrimitives.ReadUInt32BigEndian(rest[12..]) : 0;
        string? wrong = status switch
        {
            ParseStatus.NeedMoreData when header && !magicOk => "NeedMoreData for a wrong magic",
            ParseStatus.NeedMoreData when header && length > NbdLimits.MaxOptionLength => "NeedMoreData for a length over the limit: it would wait for the bytes",
            ParseStatus.NeedMoreData when header && rest.Length >= NbdLimits.OptionHeaderLength + (long)length => "NeedMoreData with the whole option present",
            ParseStatus.BadMagic when !header || magicOk => "BadMagic for a right (or missing) magic",
            ParseStatus.PayloadTooLarge when !magicOk || length <= NbdLimits.MaxOptionLength => "PayloadTooLarge for a length within the limit",
            ParseStatus.Complete or ParseStatus.NeedMoreData or ParseStatus.BadMagic or ParseStatus.PayloadTooLarge => null,
            _ => $"unknown status {status}",
        };
        if (wrong is not null) throw new FuzzFinding(wrong);
    }

    private static string DecodeExportInfo(byte[] data)
    {
        var request = ExportInfoRequest.TryDecode(data, out string? error);
        CheckOutcome(request, error);
        if (request is null) return $"info: {error}";

        var encoded = new List<byte>();
        AppendString(encoded, request.ExportName);
        AppendUInt16(encoded, (ushort)request.Requests.Count);
        foreach (var type in request.Requests) AppendUInt16(encoded, (ushort)type);
        CheckRoundTrip("NBD_OPT_INFO/GO", data, encoded);
        return $"info '{WireStrings.Quote(request.ExportName)}' {request.Requests.Count}";
    }

    private static string DecodeMetaContext(byte[] data)
    {
        var request = MetaContextRequest.TryDecode(data, out string? error);
        CheckOutcome(request, error);
        if (request is null) return $"meta: {error}";

        var encoded = new List<byte>();
        AppendString(encoded, request.ExportName);
        AppendUInt32(encoded, (uint)request.Queries.Count);
        foreach (string query in request.Queries) AppendString(encoded, query);
        CheckRoundTrip("NBD_OPT_*_META_CONTEXT", data, encoded);
        return $"meta {WireStrings.Quote(request.ExportName)} {request.Queries.Count}";
    }

    private static void CheckOutcome(object? value, string? error)
    {
        if ((value is null) == (error is null)) throw new FuzzFinding($"decoder returned {(value is null ? "neither a value nor" : "both a value and")} a reason");
    }

    private static void CheckRoundTrip(string what, byte[] data, List<byte> encoded)
    {
        if (!encoded.SequenceEqual(data)) throw new FuzzFinding($"{what}: decoded data does not encode back to the same {data.Length} bytes");
    }

    private static void AppendString(List<byte> to, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        if (bytes.Length > NbdLimits.MaxString) throw new FuzzFinding($"decoded a string of {bytes.Length} bytes, over the limit");
        if (bytes.Contains((byte)0)) throw new FuzzFinding("decoded a string with NUL");
        AppendUInt32(to, (uint)bytes.Length);
        to.AddRange(bytes);
    }

    private static void AppendUInt16(List<byte> to, ushort value) { to.Add((byte)(value >> 8)); to.Add((byte)value); }

    private static void AppendUInt32(List<byte> to, uint value) { AppendUInt16(to, (ushort)(value >> 16)); AppendUInt16(to, (ushort)value); }
}
