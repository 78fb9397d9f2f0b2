using System.Collections.Concurrent;
using System.Net.Sockets;

namespace ManagedDisks.Fuzz.Live;

/// <summary>What a run of wrong clients did, and the connections the server failed to end.</summary>
public sealed record LiveFuzzResult(long Sequences, long Frames, long BytesSent, long BytesReceived, IReadOnlyList<string> Hangs,
    IReadOnlyDictionary<string, int> Kinds);

/// <summary>
/// Runs wrong clients against a live server on a Unix socket, several at once. Each sequence is
/// one connection: its bytes go out (in a few pieces, so frames are split), then the client
/// either half-closes and reads until the server hangs up, or drops the connection at once.
/// A server that has not hung up <see cref="CloseDeadline"/> after the client's end of stream is
/// a hang. Sequence i is generated from seed × 1000003 + i alone, so any one can be replayed.
/// </summary>
public static class LiveFuzzer
{
    public static readonly TimeSpan CloseDeadline = TimeSpan.FromSeconds(15);

    public static ClientSequence Sequence(int seed, long index, IReadOnlyList<LiveExport> exports) =>
        new WrongClientSequences(new Random(unchecked((int)(seed * 1000003L + index))), exports).Next();

    public static async Task<LiveFuzzResult> RunAsync(string socketPath, IReadOnlyList<LiveExport> exports, int seed, long count,
        int parallel = 8, CancellationToken cancellationToken = default)
    {
        long next = -1, frames = 0, sent = 0, received = 0;
        var hangs = new ConcurrentQueue<string>();
        var kinds = new ConcurrentDictionary<string, int>();

        async Task Worker()
        {
            var buffer = new byte[256 * 1024];
            long index;
            while ((index = Interlocked.Increment(ref next)) < count)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var sequence = Sequence(seed, index, exports);
                kinds.AddOrUpdate(sequence.Kind.Split(':', ',')[0] + ":" + sequence.Kind.Split(':')[1].Split(',')[0], 1, (_, n) => n + 1);
                long got = await RunOneAsync(socketPath, sequence, buffer, cancellationToken).ConfigureAwait(false);
                if (got < 0) hangs.Enqueue($"seed {seed} sequence {index} ({sequence.Kind}): the server did not hang up");
                else Interlocked.Add(ref received, got);
                Interlocked.Add(ref frames, sequence.Frames);
                Interlocked.Add(ref sent, sequence.Bytes.Length);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, parallel).Select(_ => Task.Run(Worker, cancellationToken))).ConfigureAwait(false);
        return new LiveFuzzResult(count, frames, sent, received, [.. hangs], new SortedDictionary<string, int>(kinds));
    }

    /// <summary>Returns the bytes the server sent, or -1 if it did not hang up in time.</summary>
    private static async Task<long> RunOneAsync(string socketPath, ClientSequence sequence, byte[] buffer, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
        try
        {
            int piece = Math.Max(1, (sequence.Bytes.Length + sequence.Pieces - 1) / sequence.Pieces);
            for (int start = 0; start < sequence.Bytes.Length; start += piece)
                await socket.SendAsync(sequence.Bytes.AsMemory(start, Math.Min(piece, sequence.Bytes.Length - start)), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return 0; // the server already hung up on an earlier frame: that is an answer
        }

        if (sequence.Ending == Ending.Abort)
        {
            socket.LingerState = new LingerOption(true, 0); // a reset, not a polite close
            return 0;
        }

        socket.Shutdown(SocketShutdown.Send);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(CloseDeadline);
        long total = 0;
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, deadline.Token).ConfigureAwait(false)) > 0) total += n;
            return total;
        }
        catch (SocketException)
        {
            return total; // reset by the server: it did hang up
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return -1;
        }
    }
}
