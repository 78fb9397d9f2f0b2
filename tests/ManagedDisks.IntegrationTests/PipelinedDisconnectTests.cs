using System.Buffers.Binary;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// NBD_CMD_DISC: requests sent before it are still served and answered before the server
/// closes (spec). Found by the connection fuzz target: a READ that arrived in the same read
/// from the socket as the DISC lost its reply, since batched replies were not flushed.
/// </summary>
[TestFixture]
public class PipelinedDisconnectTests
{
    [Test]
    public async Task A_read_sent_together_with_DISC_is_answered_before_the_close()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        foreach (bool structured in (bool[])[false, true])
            await ReadThenDisconnectAsync(daemon, structured);
    }

    private static async Task ReadThenDisconnectAsync(DaemonProcess daemon, bool structured)
    {
        await using var client = await RawNbdClient.TransmittingAsync(daemon.SocketPath, "disk0", structured);

        // One send, so the daemon reads both frames in one batch.
        await client.SendAsync([.. Request(command: 0, cookie: 1, length: 4096), .. Request(command: 2, cookie: 2, length: 0)]);

        byte[] header = await client.ReadExactlyAsync(structured ? 20 : 16);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
        Assert.That(magic, Is.EqualTo(structured ? 0x668e33efu : 0x67446698u), "reply magic");
        Assert.That(cookie, Is.EqualTo(1UL), "the READ's cookie");
        if (structured) Assert.That(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16)), Is.EqualTo(8u + 4096), "one data chunk of the whole read");
        else Assert.That(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), Is.Zero, "no error");
        await client.ReadExactlyAsync(structured ? 8 + 4096 : 4096);
        Assert.That(await client.ServerClosedAsync(TimeSpan.FromSeconds(10)), Is.True, "the server closes after DISC");
    }

    private static byte[] Request(ushort command, ulong cookie, uint length)
    {
        var bytes = new byte[28];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), command);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), length);
        return bytes;
    }
}
