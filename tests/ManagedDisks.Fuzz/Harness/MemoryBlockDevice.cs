using ManagedDisks.BlockDevices;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// A small device in memory for the connection target. Blocks of zeros are holes, so block
/// status and hole-reporting reads have something to report. Every call is checked against
/// the device contract (in range, nothing written to a read-only device); a breach is recorded
/// as a finding, since the connection code would turn an exception into a quiet EIO.
/// </summary>
internal sealed class MemoryBlockDevice(long size, BlockDeviceCapabilities capabilities, FindingLog findings) : IBlockDevice
{
    private const int BlockSize = 4096;
    private const int MaxExtents = 8;

    private readonly byte[] _bytes = new byte[size];

    public BlockDeviceCapabilities Capabilities => capabilities;

    public long Size => size;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (InRange("read", offset, buffer.Length)) _bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default)
    {
        if (Writable("write") && InRange("write", offset, data.Length)) data.Span.CopyTo(_bytes.AsSpan((int)offset));
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default) =>
        ZeroAsync(offset, length, ZeroOptions.None, cancellationToken);

    public ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default)
    {
        if (Writable("zero") && InRange("zero", offset, length)) _bytes.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        InRange("cache", offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (!InRange("extents", offset, length)) return ValueTask.FromResult<IReadOnlyList<Extent>>([new Extent(offset, Math.Max(length, 1), ExtentFlags.Data)]);
        var extents = new List<Extent>();
        long end = offset + length;
        long position = offset;
        while (position < end && extents.Count < MaxExtents)
        {
            long blockEnd = Math.Min(end, (position / BlockSize + 1) * BlockSize);
            var flags = _bytes.AsSpan((int)position, (int)(blockEnd - position)).ContainsAnyExcept((byte)0)
                ? ExtentFlags.Data
                : ExtentFlags.Hole | ExtentFlags.Zero;
            if (extents.Count > 0 && extents[^1].Flags == flags) extents[^1] = extents[^1] with { Length = blockEnd - extents[^1].Offset };
            else extents.Add(new Extent(position, blockEnd - position, flags));
            position = blockEnd;
        }
        return ValueTask.FromResult<IReadOnlyList<Extent>>(extents);
    }

    private bool InRange(string operation, long offset, long length)
    {
        if (offset >= 0 && length > 0 && offset <= size && length <= size - offset) return true;
        findings.Add($"device {operation} at {offset}+{length} outside a {size}-byte device");
        return false;
    }

    private bool Writable(string operation)
    {
        if (!capabilities.IsReadOnly) return true;
        findings.Add($"device {operation} on a read-only device");
        return false;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
