using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Benchmarks;

/// <summary>
/// Framing cost per request: it is paid on every I/O, so it must stay far below a syscall
/// (~1 µs). 64 back-to-back 4 KiB WRITEs, as a pipelining client sends them.
/// </summary>
[MemoryDiagnoser]
public class RequestParserBenchmarks
{
    private ReadOnlySequence<byte> _frames;

    [GlobalSetup]
    public void Setup()
    {
        const int count = 64, payload = 4096;
        var bytes = new byte[count * (28 + payload)];
        for (int i = 0; i < count; i++)
        {
            var frame = bytes.AsSpan(i * (28 + payload));
            BinaryPrimitives.WriteUInt32BigEndian(frame, 0x25609513);
            BinaryPrimitives.WriteUInt16BigEndian(frame[6..], 1);
            BinaryPrimitives.WriteUInt64BigEndian(frame[8..], (ulong)i);
            BinaryPrimitives.WriteUInt64BigEndian(frame[16..], (ulong)i * payload);
            BinaryPrimitives.WriteUInt32BigEndian(frame[24..], payload);
        }
        _frames = new ReadOnlySequence<byte>(bytes);
    }

    [Benchmark(OperationsPerInvoke = 64)]
    public long Parse64Writes()
    {
        var input = _frames;
        long total = 0;
        while (RequestParser.TryParse(input, 32 << 20, out var request, out var payload, out var consumed) == ParseStatus.Complete)
        {
            total += request.Length + payload.Length;
            input = input.Slice(consumed);
        }
        return total;
    }
}
