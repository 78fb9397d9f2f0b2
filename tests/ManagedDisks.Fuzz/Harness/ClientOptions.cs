using System.Buffers.Binary;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>One option as the client sent it, and where it ends in the client's bytes.</summary>
internal readonly record struct ClientOption(uint Code, byte[] Data, int End);

/// <summary>
/// Reads the client side of a handshake independently of the server's parser (a plain reading
/// of the spec), to know which options the server must have answered, and in which order.
/// </summary>
internal static class ClientOptions
{
    public static (uint? Flags, List<ClientOption> Options) Read(byte[] client)
    {
        var options = new List<ClientOption>();
        if (client.Length < 4) return (null, options);
        int position = 4;
        while (position + NbdLimits.OptionHeaderLength <= client.Length)
        {
            var header = client.AsSpan(position);
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdMagic.IHaveOpt) break;
            uint code = BinaryPrimitives.ReadUInt32BigEndian(header[8..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header[12..]);
            if (length > NbdLimits.MaxOptionLength || position + NbdLimits.OptionHeaderLength + length > client.Length) break;
            int end = position + NbdLimits.OptionHeaderLength + (int)length;
            options.Add(new ClientOption(code, client[(position + NbdLimits.OptionHeaderLength)..end], end));
            position = end;
        }
        return (BinaryPrimitives.ReadUInt32BigEndian(client), options);
    }
}
