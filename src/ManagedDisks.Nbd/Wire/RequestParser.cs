using System.Buffers;
using System.Buffers.Binary;

namespace ManagedDisks.Nbd.Wire;

internal enum ParseStatus
{
    NeedMoreData,
    Complete,
    BadMagic,
    PayloadTooLarge,
}

/// <summary>
/// Frames transmission requests. Pure: no I/O; the caller owns the buffer and its AdvanceTo.
/// A WRITE's payload is returned as a slice of the input that the caller must copy before advancing.
/// </summary>
internal static class RequestParser
{
    public static ParseStatus TryParse(in ReadOnlySequence<byte> input, uint maxWritePayload,
        out NbdRequest request, out ReadOnlySequence<byte> payload, out SequencePosition consumed)
    {
        request = default;
        payload = default;
        consumed = input.Start;
        if (input.Length < NbdLimits.RequestHeaderLength) return ParseStatus.NeedMoreData;

        Span<byte> header = stackalloc byte[NbdLimits.RequestHeaderLength];
        input.Slice(0, NbdLimits.RequestHeaderLength).CopyTo(header);
        if (BinaryPrimitives.ReadUInt32BigEndian(header) != NbdMagic.Request) return ParseStatus.BadMagic;

        request = new NbdRequest(
            (CommandFlags)BinaryPrimitives.ReadUInt16BigEndian(header[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(header[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(header[24..]));

        long frameLength = NbdLimits.RequestHeaderLength;
        if (request.Command == NbdCommand.Write)
        {
            // Checked before waiting for the bytes: a huge length must not make us buffer it.
            if (request.Length > maxWritePayload) return ParseStatus.PayloadTooLarge;
            frameLength += request.Length;
            if (input.Length < frameLength) return ParseStatus.NeedMoreData;
            payload = input.Slice(NbdLimits.RequestHeaderLength, request.Length);
        }
        consumed = input.GetPosition(frameLength);
        return ParseStatus.Complete;
    }
}
