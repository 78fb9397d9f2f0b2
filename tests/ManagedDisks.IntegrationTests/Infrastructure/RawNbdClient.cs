using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// A deliberately dumb NBD client that sends whatever bytes a test asks for, to check how the
/// daemon handles clients that real libraries would never let us imitate.
/// </summary>
public sealed class RawNbdClient : IAsyncDisposable
{
    private readonly Socket _socket;

    private RawNbdClient(Socket socket) => _socket = socket;

    public static async Task<RawNbdClient> ConnectAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        return new RawNbdClient(socket);
    }

    /// <summary>Connects and reads the server greeting; returns the handshake flags.</summary>
    public static async Task<(RawNbdClient Client, ushort Flags)> ConnectAndGreetAsync(string socketPath)
    {
        var client = await ConnectAsync(socketPath);
        byte[] greeting = await client.ReadExactlyAsync(18);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(greeting), Is.EqualTo(0x4e42444d41474943UL), "NBDMAGIC");
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)), Is.EqualTo(0x49484156454F5054UL), "IHAVEOPT");
        return (client, BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16)));
    }

    /// <summary>Greets with fixed newstyle + no zeroes, ready for options.</summary>
    public static async Task<RawNbdClient> NegotiatingAsync(string socketPath)
    {
        var (client, _) = await ConnectAndGreetAsync(socketPath);
        await client.SendUInt32Async(3);
        return client;
    }

    /// <summary>Negotiates structured replies and GO on an export; ready for requests.</summary>
    public static async Task<RawNbdClient> TransmittingAsync(string socketPath, string export, bool structured = false)
    {
        var client = await NegotiatingAsync(socketPath);
        if (structured)
        {
            await client.SendOptionAsync(8, []);
            Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
        }
        await client.SendOptionAsync(7, GoData(export));
        while (true)
        {
            var reply = await client.ReadOptionReplyAsync();
            if (reply.Type == 1) return client;
            Assert.That(reply.Type, Is.EqualTo(3u), $"GO failed: {Encoding.UTF8.GetString(reply.Data)}");
        }
    }

    public static byte[] GoData(string export)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        var data = new byte[4 + name.Length + 2];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        return data;
    }

    public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes.AsMemory());

    public Task SendUInt32Async(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return SendAsync(bytes);
    }

    public Task SendOptionAsync(uint option, byte[] data, uint? claimedLength = null) => SendAsync(EncodeOption(option, data, claimedLength));

    /// <summary><c>u64 IHAVEOPT | u32 option | u32 length | data</c>; the length may lie, to test the server.</summary>
    public static byte[] EncodeOption(uint option, byte[] data, uint? claimedLength = null)
    {
        var bytes = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, 0x49484156454F5054);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), claimedLength ?? (uint)data.Length);
        data.CopyTo(bytes, 16);
        return bytes;
    }

    public Task SendRequestAsync(ushort flags, ushort type, ulong cookie, ulong offset, uint length, byte[]? payload = null, uint magic = 0x25609513)
    {
        var bytes = new byte[28 + (payload?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), length);
        payload?.CopyTo(bytes, 28);
        return SendAsync(bytes);
    }

    public record OptionReply(uint Option, uint Type, byte[] Data);

    public async Task<OptionReply> ReadOptionReplyAsync()
    {
        byte[] header = await ReadExactlyAsync(20);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(header), Is.EqualTo(0x0003e889045565a9UL), "option reply magic");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return new OptionReply(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)),
            await ReadExactlyAsync((int)length));
    }

    /// <summary>Reads a simple reply: (error, cookie).</summary>
    public async Task<(uint Error, ulong Cookie)> ReadSimpleReplyAsync()
    {
        byte[] header = await ReadExactlyAsync(16);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(header), Is.EqualTo(0x67446698u), "simple reply magic");
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)));
    }

    public async Task<byte[]> ReadExactlyAsync(int count)
    {
        var buffer = new byte[count];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int read = 0;
        while (read < count)
        {
            int n = await _socket.ReceiveAsync(buffer.AsMemory(read), cts.Token);
            if (n == 0) throw new EndOfStreamException($"the server closed the connection after {read} of {count} bytes");
            read += n;
        }
        return buffer;
    }

    /// <summary>True once the server has closed the connection (reads return end of stream or a reset).</summary>
    public async Task<bool> ServerClosedAsync(TimeSpan within)
    {
        using var cts = new CancellationTokenSource(within);
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                if (await _socket.ReceiveAsync(buffer, cts.Token) == 0) return true;
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Close() => _socket.Close();

    /// <summary>Hands the connection to a stream (e.g. to start TLS on it); this client must not be used afterwards.</summary>
    public Stream DetachStream() => new NetworkStream(_socket, ownsSocket: true);

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
