using System.Buffers.Binary;

namespace ManagedDisks.Tests;

/// <summary>Encodes client messages byte by byte, independently of the server's code.</summary>
internal static class WireBuilder
{
    public static byte[] Request(ushort flags, ushort type, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var bytes = new byte[28 + (payload?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), length);
        payload?.CopyTo(bytes, 28);
        return bytes;
    }

    public static byte[] Option(uint option, byte[] data)
    {
        var bytes = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, 0x49484156454F5054);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), (uint)data.Length);
        data.CopyTo(bytes, 16);
        return bytes;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
