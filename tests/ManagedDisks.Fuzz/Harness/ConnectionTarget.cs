using ManagedDisks.Nbd;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Target "connection": a whole connection as <c>NbdServer</c> runs it, handshake then
/// <see cref="Transmission"/> on an in-memory device, driven by arbitrary client bytes. Beyond
/// the handshake's promises: the connection ends when the client's bytes do, every request is
/// answered as <see cref="TransmissionReplyChecker"/> requires, nothing out of range or forbidden
/// reaches a device, and nothing is logged as an unexpected failure.
/// </summary>
public static class ConnectionTarget
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly NbdServerOptions Options = new();

    public static void Run(byte[] input)
    {
        var findings = new FindingLog();
        var catalog = FuzzExports.NewCatalog(findings);
        var (streams, client, session) = HandshakeTarget.Negotiate(input, catalog, TlsMode.Off, findings);
        int serverHandshakeEnd = client.ServerBytes.Length;
        if (session is not null)
        {
            var run = new Transmission(streams.Input, streams.Output, session, Options, findings, "fuzz").RunAsync(CancellationToken.None);
            if (!run.Wait(Deadline)) throw new FuzzFinding($"the connection did not end within {Deadline.TotalSeconds} s after the client's bytes ran out");
        }
        streams.DisposeAsync().AsTask().Wait();

        byte[] server = client.ServerBytes;
        var (clientEnd, serverEnd) = OptionReplyChecker.Check(input, server[..serverHandshakeEnd], session, TlsMode.Off, catalog);
        if (session is not null)
            TransmissionReplyChecker.Check(input.AsSpan(clientEnd), server.AsSpan(serverEnd), session.StructuredReplies, session.Export.Device.Capabilities.MaximumPayload);
        findings.ThrowIfAny();
    }
}
