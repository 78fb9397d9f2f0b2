using System.Buffers.Binary;

namespace ManagedDisks.Nbd.Wire;

/// <summary>Writes reply headers into caller-owned buffers; every field big-endian.</summary>
internal static class ReplyEncoder
{
    public static void SimpleReply(Span<byte> destination, NbdError error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
    }

    public static void ChunkHeader(Span<byte> destination, ReplyFlags flags, ChunkType type, ulong cookie, uint length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdMagic.StructuredReply);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], length);
    }

    public static void OptionReplyHeader(Span<byte> destination, uint option, OptionReplyType type, uint length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], length);
    }
}
