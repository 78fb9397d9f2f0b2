using System.Buffers;
using System.Buffers.Binary;

namespace ManagedDisks.Nbd.Wire;

/// <summary>Frames handshake-phase messages. Pure, like <see cref="RequestParser"/>.</summary>
internal static class OptionParser
{
    public static ParseStatus TryParseClientFlags(in ReadOnlySequence<byte> input, out uint flags, out SequencePosition consumed)
    {
        flags = 0;
        consumed = input.Start;
        if (input.Length < 4) return ParseStatus.NeedMoreData;
        Span<byte> bytes = stackalloc byte[4];
        input.Slice(0, 4).CopyTo(bytes);
        flags = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        consumed = input.GetPosition(4);
        return ParseStatus.Complete;
    }

    /// <summary>Frames one option: <c>u64 IHAVEOPT | u32 option | u32 length | data</c>.</summary>
    public static ParseStatus TryParseOption(in ReadOnlySequence<byte> input, int maxLength,
        out uint option, out ReadOnlySequence<byte> data, out SequencePosition consumed)
    {
        option = 0;
        data = default;
        consumed = input.Start;
        if (input.Length < NbdLimits.OptionHeaderLength) return ParseStatus.NeedMoreData;

        Span<byte> header = stackalloc byte[NbdLimits.OptionHeaderLength];
        input.Slice(0, NbdLimits.OptionHeaderLength).CopyTo(header);
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdMagic.IHaveOpt) return ParseStatus.BadMagic;
        option = BinaryPrimitives.ReadUInt32BigEndian(header[8..]);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[12..]);
        if (length > maxLength) return ParseStatus.PayloadTooLarge;

        long frameLength = NbdLimits.OptionHeaderLength + length;
        if (input.Length < frameLength) return ParseStatus.NeedMoreData;
        data = input.Slice(NbdLimits.OptionHeaderLength, length);
        consumed = input.GetPosition(frameLength);
        return ParseStatus.Complete;
    }
}
