namespace ManagedDisks.Nbd;

public sealed record NbdServerOptions
{
    /// <summary>Connections beyond this are closed at accept (qemu CVE-2024-7409 caps at 100 by default).</summary>
    public int MaxConnections { get; init; } = 512;

    /// <summary>A client that has not reached transmission by then is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Bytes of requests a connection may have in flight before we stop reading from it.</summary>
    public long MaxInFlightBytesPerConnection { get; init; } = 64L * 1024 * 1024;

    /// <summary>NBD over TLS (STARTTLS); off unless configured.</summary>
    public NbdTlsOptions Tls { get; init; } = new(TlsMode.Off, null, null);

    /// <summary>At stop, how long connections are kept open to answer new requests with ESHUTDOWN.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a graceful stop waits for connections to finish.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
