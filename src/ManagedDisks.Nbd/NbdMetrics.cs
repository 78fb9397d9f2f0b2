using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Nbd;

/// <summary>Bytes and requests served per export since the daemon started.</summary>
public sealed class ExportStatistics
{
    private long _bytesRead, _bytesWritten, _requests, _errors;

    public long BytesRead => Interlocked.Read(ref _bytesRead);
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);
    public long Requests => Interlocked.Read(ref _requests);
    public long Errors => Interlocked.Read(ref _errors);

    internal void Record(NbdCommand command, uint length, bool failed)
    {
        Interlocked.Increment(ref _requests);
        if (failed) Interlocked.Increment(ref _errors);
        else if (command == NbdCommand.Read) Interlocked.Add(ref _bytesRead, length);
        else if (command == NbdCommand.Write) Interlocked.Add(ref _bytesWritten, length);
    }
}

/// <summary>The name of the NBD layer's System.Diagnostics.Metrics meter.</summary>
public static class NbdInstruments
{
    /// <summary>Creates the instruments now, so an exporter started before the first request already sees them.</summary>
    public static string Publish() => NbdMetrics.Meter.Name;
}

/// <summary>
/// The server's instruments on System.Diagnostics.Metrics (meter "ManagedDisks.Nbd"), which any
/// exporter can collect (the daemon exposes them to Prometheus), plus plain per-export totals for
/// the status command. Recording costs a few atomic adds when nothing listens.
/// </summary>
internal static class NbdMetrics
{
    public static readonly Meter Meter = new("ManagedDisks.Nbd");

    private static readonly Counter<long> Bytes = Meter.CreateCounter<long>("io.bytes", "By", "Bytes read or written by clients");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>("request.duration", "s", "Time from a request's arrival to its reply");
    private static readonly Counter<long> Errors = Meter.CreateCounter<long>("request.errors", description: "Requests answered with an error");
    private static readonly UpDownCounter<long> Connections = Meter.CreateUpDownCounter<long>("connections", description: "Open client connections");

    private static readonly ConcurrentDictionary<string, ExportStatistics> Totals = new(StringComparer.Ordinal);

    public static ExportStatistics For(string export) => Totals.GetOrAdd(export, _ => new ExportStatistics());

    public static void ConnectionOpened() => Connections.Add(1);
    public static void ConnectionClosed() => Connections.Add(-1);

    public static void RequestDone(string export, NbdCommand command, uint length, long startTimestamp, NbdError error)
    {
        For(export).Record(command, length, error != NbdError.None);
        var tags = new TagList { { "export", export }, { "command", command.ToString().ToLowerInvariant() } };
        Duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, tags);
        if (error != NbdError.None)
        {
            tags.Add("error", error.ToString().ToLowerInvariant());
            Errors.Add(1, tags);
        }
        else if (command is NbdCommand.Read or NbdCommand.Write)
        {
            Bytes.Add(length, new TagList { { "export", export }, { "direction", command == NbdCommand.Read ? "read" : "write" } });
        }
    }
}
