using System.Buffers.Binary;
using System.Text;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Clients that break the protocol, hoard resources or vanish: each gets the spec's answer or a
/// clean close, and the daemon keeps serving everyone else (NBD.md §3 lists the real bugs).
/// </summary>
[NonParallelizable]
public class HostileClientTests
{
    private static readonly TimeSpan CloseWithin = TimeSpan.FromSeconds(10);
    private DaemonProcess _daemon = null!;

    [OneTimeSetUp]
    public async Task StartDaemon() =>
        _daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "64M"), daemonExtra: "max_connections = 40\nhandshake_timeout = \"2s\"");

    [OneTimeTearDown]
    public async Task StopDaemon() => await _daemon.DisposeAsync();

    /// <summary>After every hostile act, a real client must still be served.</summary>
    [TearDown]
    public async Task DaemonStillServes()
    {
        Assert.That(_daemon.HasExited, Is.False, "the daemon died");
        var result = await Tool.RunAsync("nbdinfo", ["--size", _daemon.Uri()]);
        Assert.That(result.StdOut.Trim(), Is.EqualTo((64L << 20).ToString()), result.ToString());
    }

    [Test]
    public async Task ServerOffersOnlyFixedNewstyleAndNoZeroes()
    {
        var (client, flags) = await RawNbdClient.ConnectAndGreetAsync(_daemon.SocketPath);
        await using var _ = client;
        Assert.That(flags, Is.EqualTo(3));
    }

    [TestCase(0x4u, TestName = "UnknownClientFlagDropsTheConnection")]
    [TestCase(0x80000001u, TestName = "HighClientFlagDropsTheConnection")]
    public async Task BadClientFlags(uint flags)
    {
        var (client, _) = await RawNbdClient.ConnectAndGreetAsync(_daemon.SocketPath);
        await using var _ = client;
        await client.SendUInt32Async(flags);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task NonFixedNewstyleClientSendingAnythingButExportNameIsDropped()
    {
        var (client, _) = await RawNbdClient.ConnectAndGreetAsync(_daemon.SocketPath);
        await using var _ = client;
        await client.SendUInt32Async(0x2);
        await client.SendOptionAsync(3, []);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
        await _daemon.WaitForLogAsync("non-fixed newstyle client");
    }

    [Test]
    public async Task BadOptionMagicDropsTheConnection()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendAsync(new byte[16]);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task GigabyteOptionLengthIsNotReadButDropped()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(3, [], claimedLength: 1u << 30);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task UnknownOptionGetsErrUnsupAndItsDataIsConsumed()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(0xbeef, Encoding.UTF8.GetBytes("data that must be skipped"));
        var reply = await client.ReadOptionReplyAsync();
        Assert.That((reply.Option, reply.Type), Is.EqualTo((0xbeefu, 0x80000001u)));

        await client.SendOptionAsync(3, []); // LIST still works: the stream is in sync
        var server = await client.ReadOptionReplyAsync();
        Assert.That(server.Type, Is.EqualTo(2u));
        Assert.That(Encoding.UTF8.GetString(server.Data, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(server.Data)), Is.EqualTo("disk0"));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
    }

    [Test]
    public async Task ListWithDataIsInvalidAndTheNextOptionIsStillParsed()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(3, [1, 2, 3]);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(0x80000003u));
        await client.SendOptionAsync(8, []);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
    }

    [Test]
    public async Task StartTlsIsRefusedByPolicy()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(5, []);
        var reply = await client.ReadOptionReplyAsync();
        Assert.That(reply.Type, Is.EqualTo(0x80000002u));
        Assert.That(Encoding.UTF8.GetString(reply.Data), Does.Contain("TLS"));
    }

    [Test]
    public async Task AbortIsAcknowledged()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(2, []);
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(1u));
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task ExportNameLongerThan4096IsInvalidAndNotEchoedInFull()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(7, RawNbdClient.GoData(new string('n', 5000)));
        var reply = await client.ReadOptionReplyAsync();
        Assert.That(reply.Type, Is.EqualTo(0x80000003u));

        // 4096 is legal but unknown: the error echoes a truncated name (qemu CVE-2020-10761).
        await client.SendOptionAsync(7, RawNbdClient.GoData(new string('n', 4096)));
        reply = await client.ReadOptionReplyAsync();
        Assert.That(reply.Type, Is.EqualTo(0x80000006u));
        Assert.That(reply.Data.Length, Is.LessThan(256));
    }

    [Test]
    public async Task ExportNameOptionWithUnknownNameHangsUp()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(1, Encoding.UTF8.GetBytes("no-such-disk"));
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task ExportNameOptionEntersTransmissionWithoutZeroPadding()
    {
        await using var client = await RawNbdClient.NegotiatingAsync(_daemon.SocketPath);
        await client.SendOptionAsync(1, Encoding.UTF8.GetBytes("disk0"));
        byte[] reply = await client.ReadExactlyAsync(10);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(reply), Is.EqualTo(64UL << 20));
        ushort flags = BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8));
        Assert.That(flags & 0x80, Is.Zero, "DF must be clear without structured replies");

        await client.SendRequestAsync(0, 0, 42, 0, 4096);
        var (error, cookie) = await client.ReadSimpleReplyAsync();
        Assert.That((error, cookie), Is.EqualTo((0u, 42UL)));
        Assert.That(await client.ReadExactlyAsync(4096), Has.All.EqualTo(0));
    }

    [Test]
    public async Task BadRequestMagicDropsTheConnection()
    {
        await using var client = await RawNbdClient.TransmittingAsync(_daemon.SocketPath, "disk0");
        await client.SendRequestAsync(0, 0, 1, 0, 512, magic: 0x12560953);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task WritePayloadOver32MiBDropsTheConnection()
    {
        await using var client = await RawNbdClient.TransmittingAsync(_daemon.SocketPath, "disk0");
        await client.SendRequestAsync(0, 1, 1, 0, (32u << 20) + 512);
        Assert.That(await client.ServerClosedAsync(CloseWithin), Is.True);
    }

    [Test]
    public async Task Write32MiBIsAccepted()
    {
        await using var client = await RawNbdClient.TransmittingAsync(_daemon.SocketPath, "disk0");
        byte[] payload = new byte[32 << 20];
        Random.Shared.NextBytes(payload);
        await client.SendRequestAsync(0, 1, 5, 0, (uint)payload.Length, payload);
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 5UL)));
        await client.SendRequestAsync(0, 0, 6, 0, (uint)payload.Length);
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 6UL)));
        Assert.That(await client.ReadExactlyAsync(payload.Length), Is.EqualTo(payload));
    }

    [Test]
    public async Task PipelinedRequestsAreAllAnsweredWithTheirCookies()
    {
        await using var client = await RawNbdClient.TransmittingAsync(_daemon.SocketPath, "disk0");
        const int count = 200;
        for (ulong cookie = 0; cookie < count; cookie++)
            await client.SendRequestAsync(0, 1, cookie, cookie * 4096, 4096, Enumerable.Repeat((byte)cookie, 4096).ToArray());
        var cookies = new HashSet<ulong>();
        for (int i = 0; i < count; i++)
        {
            var (error, cookie) = await client.ReadSimpleReplyAsync();
            Assert.That(error, Is.Zero);
            cookies.Add(cookie);
        }
        Assert.That(cookies, Has.Count.EqualTo(count));
    }

    [Test]
    public async Task ClientThatHangsUpWithRepliesQueuedOnlyEndsItsOwnConnection()
    {
        // nbdkit 1.32 aborted the whole server here (fixed in 9d82aa4f).
        for (int round = 0; round < 5; round++)
        {
            var client = await RawNbdClient.TransmittingAsync(_daemon.SocketPath, "disk0");
            for (ulong cookie = 0; cookie < 64; cookie++) await client.SendRequestAsync(0, 0, cookie, 0, 1 << 20);
            client.Close();
        }
        // TearDown checks that a new client is served.
    }

    [Test]
    public async Task ClientThatNeverSpeaksIsDroppedAfterTheHandshakeTimeout()
    {
        var (client, _) = await RawNbdClient.ConnectAndGreetAsync(_daemon.SocketPath);
        await using var _ = client;
        Assert.That(await client.ServerClosedAsync(TimeSpan.FromSeconds(20)), Is.True);
        await _daemon.WaitForLogAsync("did not finish negotiating within");
    }

    [Test]
    public async Task ConnectionsBeyondTheCapAreClosedAndIdleOnesExpire()
    {
        var idle = new List<RawNbdClient>();
        try
        {
            for (int i = 0; i < 40; i++) idle.Add((await RawNbdClient.ConnectAndGreetAsync(_daemon.SocketPath)).Client);
            await using var extra = await RawNbdClient.ConnectAsync(_daemon.SocketPath);
            Assert.That(await extra.ServerClosedAsync(CloseWithin), Is.True, "a connection over max_connections must be closed");
            await _daemon.WaitForLogAsync("connections are open");

            // The parked ones expire after handshake_timeout, which frees the slots for TearDown's client.
            foreach (var client in idle) Assert.That(await client.ServerClosedAsync(TimeSpan.FromSeconds(20)), Is.True);
        }
        finally
        {
            foreach (var client in idle) await client.DisposeAsync();
        }
    }
}
