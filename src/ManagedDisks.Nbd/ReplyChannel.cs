namespace ManagedDisks.Nbd;

/// <summary>
/// The sending half of a connection. Replies from concurrent requests are serialised here; a
/// failed send (the client hung up) marks the channel broken so every later reply is dropped
/// quietly and only this connection ends (nbdkit 9d82aa4f: a hang-up must not kill the server).
/// </summary>
internal sealed class ReplyChannel(Stream stream)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private volatile bool _broken;

    public bool IsBroken => _broken;

    /// <summary>Raised once, when a send fails.</summary>
    public event Action? Broken;

    public async ValueTask SendAsync(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second = default)
    {
        if (_broken) return;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_broken) return;
            await stream.WriteAsync(first).ConfigureAwait(false);
            if (!second.IsEmpty) await stream.WriteAsync(second).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            MarkBroken();
        }
        finally
        {
            _lock.Release();
        }
    }

    public void MarkBroken()
    {
        if (_broken) return;
        _broken = true;
        Broken?.Invoke();
    }
}
