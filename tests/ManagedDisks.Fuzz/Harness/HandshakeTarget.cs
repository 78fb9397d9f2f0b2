using ManagedDisks.Nbd;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Target "handshake": the whole <see cref="Handshake"/> class driven by arbitrary client bytes
/// over an in-memory connection, once with TLS off and once with TLS required (and no
/// certificate, so STARTTLS is refused). No exception may escape, it must finish when the client's
/// bytes run out, and what it says must pass <see cref="OptionReplyChecker"/>.
/// </summary>
public static class HandshakeTarget
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    public static void Run(byte[] input)
    {
        foreach (var mode in (TlsMode[])[TlsMode.Off, TlsMode.Require])
        {
            var findings = new FindingLog();
            var catalog = FuzzExports.NewCatalog(findings);
            var (_, server, session) = Negotiate(input, catalog, mode, findings);
            OptionReplyChecker.Check(input, server.ServerBytes, session, mode, catalog);
            findings.ThrowIfAny();
        }
    }

    /// <summary>Runs a handshake to its end; the streams stay open for a transmission phase.</summary>
    internal static (ConnectionStreams Streams, ScriptedClientStream Client, Session? Session) Negotiate(
        byte[] input, IExportCatalog catalog, TlsMode mode, FindingLog findings)
    {
        var client = new ScriptedClientStream(input);
        var streams = new ConnectionStreams(client);
        var handshake = new Handshake(streams, catalog, new NbdTlsOptions(mode, null, null), findings, "fuzz");
        var run = handshake.RunAsync(CancellationToken.None);
        if (!run.Wait(Deadline)) throw new FuzzFinding($"the handshake did not finish within {Deadline.TotalSeconds} s after the client's bytes ran out");
        return (streams, client, run.Result);
    }
}
