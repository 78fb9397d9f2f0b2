using System.Buffers;
using System.IO.Pipelines;

namespace ManagedDisks.Nbd;

/// <summary>
/// The sending half of a connection. Replies from concurrent requests are serialised here.
/// Small replies are copied into a pipe and sent together, so a batch of pipelined requests
/// costs one send; large payloads go straight to the socket to avoid the copy.
/// A failed send (the client hung up) marks the channel broken so every later reply is
/// dropped quietly and only this connection ends (nbdkit 9d82aa4f: a hang-up must not kill the server).
/// </summary>
internal sealed class ReplyChannel(Stream stream)
{
    private const int DirectThreshold = 64 * 1024;

    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly PipeWriter _pipe = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
    private bool _pending;
    private volatile bool _broken;

    public bool IsBroken => _broken;

    /// <summary>Raised once, when a send fails.</summary>
    public event Action? Broken;

    /// <summary>Queues a reply; unless <paramref name="flush"/> is false it is sent before this returns.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second = default, bool flush = true)
    {
        if (_broken) return;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_broken) return;
            if (first.Length + second.Length >= DirectThreshold)
            {
                if (_pending) await FlushPipeAsync().ConfigureAwait(false);
                await stream.WriteAsync(first).ConfigureAwait(false);
                if (!second.IsEmpty) await stream.WriteAsync(second).ConfigureAwait(false);
                return;
            }
            _pipe.Write(first.Span);
            if (!second.IsEmpty) _pipe.Write(second.Span);
            _pending = true;
            if (flush) await FlushPipeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            MarkBroken();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Sends whatever replies are queued.</summary>
    public async ValueTask FlushAsync()
    {
        if (!_pending || _broken) return;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_pending && !_broken) await FlushPipeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            MarkBroken();
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask FlushPipeAsync()
    {
        _pending = false;
        var result = await _pipe.FlushAsync().ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted) MarkBroken();
    }

    public void MarkBroken()
    {
        if (_broken) return;
        _broken = true;
        Broken?.Invoke();
    }
}
