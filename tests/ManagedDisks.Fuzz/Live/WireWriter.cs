using System.Buffers.Binary;
using System.Text;

namespace ManagedDisks.Fuzz.Live;

/// <summary>Builds client bytes of the NBD protocol, right or deliberately wrong, and counts the frames.</summary>
internal sealed class WireWriter
{
    public const ulong IHaveOpt = 0x49484156454F5054;
    public const uint RequestMagic = 0x25609513;

    private readonly MemoryStream _bytes = new();

    public int Frames { get; private set; }

    public byte[] ToArray() => _bytes.ToArray();

    public WireWriter Raw(ReadOnlySpan<byte> bytes)
    {
        _bytes.Write(bytes);
        return this;
    }

    public WireWriter UInt16(ushort value) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, value); return Raw(b); }
    public WireWriter UInt32(uint value) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, value); return Raw(b); }
    public WireWriter UInt64(ulong value) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64BigEndian(b, value); return Raw(b); }

    public WireWriter ClientFlags(uint flags)
    {
        Frames++;
        return UInt32(flags);
    }

    /// <summary>An option whose length field may lie about its data.</summary>
    public WireWriter Option(uint option, byte[] data, uint? claimedLength = null, ulong magic = IHaveOpt)
    {
        Frames++;
        return UInt64(magic).UInt32(option).UInt32(claimedLength ?? (uint)data.Length).Raw(data);
    }

    public static byte[] ExportInfoData(byte[] name, params ushort[] infos)
    {
        var w = new WireWriter().UInt32((uint)name.Length).Raw(name).UInt16((ushort)infos.Length);
        foreach (ushort info in infos) w.UInt16(info);
        return w.ToArray();
    }

    public static byte[] MetaContextData(byte[] name, params string[] queries)
    {
        var w = new WireWriter().UInt32((uint)name.Length).Raw(name).UInt32((uint)queries.Length);
        foreach (string query in queries) w.UInt32((uint)Encoding.UTF8.GetByteCount(query)).Raw(Encoding.UTF8.GetBytes(query));
        return w.ToArray();
    }

    public WireWriter Request(ushort flags, ushort command, ulong cookie, ulong offset, uint length, byte[]? payload = null, uint magic = RequestMagic)
    {
        Frames++;
        UInt32(magic).UInt16(flags).UInt16(command).UInt64(cookie).UInt64(offset).UInt32(length);
        return payload is null ? this : Raw(payload);
    }
}
