using System.Buffers.Binary;
using System.Text;

namespace ManagedDisks.Nbd.Wire;

/// <summary>The data of NBD_OPT_INFO / NBD_OPT_GO: an export name and the information requested.</summary>
internal sealed record ExportInfoRequest(string ExportName, IReadOnlyList<InfoType> Requests)
{
    /// <summary>Decodes <c>u32 namelen | name | u16 n | n × u16</c>; returns null and a reason when malformed.</summary>
    public static ExportInfoRequest? TryDecode(ReadOnlySpan<byte> data, out string? error)
    {
        error = null;
        if (data.Length < 6) { error = "option data shorter than its fixed fields"; return null; }
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > data.Length - 6) { error = "export name length exceeds the option data"; return null; }
        if (nameLength > NbdLimits.MaxString) { error = $"export name longer than {NbdLimits.MaxString} bytes"; return null; }
        if (!WireStrings.TryDecode(data.Slice(4, (int)nameLength), out string name)) { error = "export name is not valid UTF-8"; return null; }
        var rest = data[(4 + (int)nameLength)..];
        int count = BinaryPrimitives.ReadUInt16BigEndian(rest);
        if (rest.Length != 2 + 2 * count) { error = "information request count does not match the option length"; return null; }
        var requests = new InfoType[count];
        for (int i = 0; i < count; i++) requests[i] = (InfoType)BinaryPrimitives.ReadUInt16BigEndian(rest[(2 + 2 * i)..]);
        return new ExportInfoRequest(name, requests);
    }
}

/// <summary>The data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
internal sealed record MetaContextRequest(string ExportName, IReadOnlyList<string> Queries)
{
    /// <summary>Decodes <c>u32 namelen | name | u32 n | n × (u32 len | query)</c>.</summary>
    public static MetaContextRequest? TryDecode(ReadOnlySpan<byte> data, out string? error)
    {
        error = null;
        if (!TryReadString(ref data, out string? name, out error)) return null;
        if (data.Length < 4) { error = "missing query count"; return null; }
        uint count = BinaryPrimitives.ReadUInt32BigEndian(data);
        data = data[4..];
        // Each query takes at least its 4-byte length, so the count is bounded by the data.
        if (count > data.Length / 4) { error = "query count exceeds the option data"; return null; }
        var queries = new List<string>((int)count);
        for (uint i = 0; i < count; i++)
        {
            if (!TryReadString(ref data, out string? query, out error)) return null;
            queries.Add(query!);
        }
        if (!data.IsEmpty) { error = "trailing bytes after the last query"; return null; }
        return new MetaContextRequest(name!, queries);
    }

    private static bool TryReadString(ref ReadOnlySpan<byte> data, out string? value, out string? error)
    {
        value = null;
        error = null;
        if (data.Length < 4) { error = "truncated string length"; return false; }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (length > data.Length - 4) { error = "string length exceeds the option data"; return false; }
        if (length > NbdLimits.MaxString) { error = $"string longer than {NbdLimits.MaxString} bytes"; return false; }
        if (!WireStrings.TryDecode(data.Slice(4, (int)length), out string decoded)) { error = "string is not valid UTF-8"; return false; }
        value = decoded;
        data = data[(4 + (int)length)..];
        return true;
    }
}

internal static class WireStrings
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Strings on the wire are UTF-8 without NUL.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> bytes, out string value)
    {
        value = "";
        if (bytes.Contains((byte)0)) return false;
        try { value = Strict.GetString(bytes); return true; }
        catch (DecoderFallbackException) { return false; }
    }

    /// <summary>Client-supplied text echoed in an error is cut short (qemu CVE-2020-10761).</summary>
    public static string Quote(string clientText, int max = 64) =>
        clientText.Length <= max ? $"'{clientText}'" : $"'{clientText[..max]}…' ({clientText.Length} characters)";
}
