using System.Buffers;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// The same bytes as a multi-segment sequence, as a pipe hands them over when they arrive in
/// pieces. A parser must give the same answer whatever the segmentation.
/// </summary>
internal sealed class Chunked : ReadOnlySequenceSegment<byte>
{
    private Chunked(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    /// <summary>Splits into segments of <paramref name="size"/> bytes (the last may be shorter).</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, int size)
    {
        if (bytes.Length == 0) return ReadOnlySequence<byte>.Empty;
        var first = new Chunked(bytes.AsMemory(0, Math.Min(size, bytes.Length)), 0);
        var last = first;
        for (int start = size; start < bytes.Length; start += size)
        {
            var next = new Chunked(bytes.AsMemory(start, Math.Min(size, bytes.Length - start)), start);
            last.Next = next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>A segment size that varies with the input (1 to 7 bytes), so every field boundary gets split somewhere.</summary>
    public static int SizeFor(byte[] bytes) => 1 + bytes.Length % 7;
}
