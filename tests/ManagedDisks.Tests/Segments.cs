using System.Buffers;

namespace ManagedDisks.Tests;

/// <summary>Builds multi-segment sequences, so parsers meet frames split at every possible byte.</summary>
internal sealed class Segment : ReadOnlySequenceSegment<byte>
{
    private Segment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public static ReadOnlySequence<byte> OneBytePerSegment(byte[] bytes)
    {
        if (bytes.Length == 0) return ReadOnlySequence<byte>.Empty;
        var first = new Segment(bytes.AsMemory(0, 1), 0);
        var last = first;
        for (int i = 1; i < bytes.Length; i++)
        {
            var next = new Segment(bytes.AsMemory(i, 1), i);
            last.Next = next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }
}
