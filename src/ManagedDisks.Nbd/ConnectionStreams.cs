using System.IO.Pipelines;

namespace ManagedDisks.Nbd;

/// <summary>The byte streams of one connection; STARTTLS replaces them with ones over TLS.</summary>
internal sealed class ConnectionStreams(Stream transport) : IAsyncDisposable
{
    public Stream Transport { get; private set; } = transport;
    public PipeReader Input { get; private set; } = CreateReader(transport);
    public ReplyChannel Output { get; private set; } = new(transport);

    private static PipeReader CreateReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 128 * 1024, minimumReadSize: 32 * 1024, leaveOpen: true));

    /// <summary>Switches to <paramref name="secure"/>, which wraps the current transport.</summary>
    public async ValueTask UpgradeAsync(Stream secure)
    {
        await Input.CompleteAsync().ConfigureAwait(false);
        Transport = secure;
        Input = CreateReader(secure);
        Output = new ReplyChannel(secure);
    }

    public async ValueTask DisposeAsync()
    {
        await Input.CompleteAsync().ConfigureAwait(false);
        await Transport.DisposeAsync().ConfigureAwait(false);
    }
}
