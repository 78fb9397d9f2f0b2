using BenchmarkDotNet.Attributes;
using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;

namespace ManagedDisks.Benchmarks;

/// <summary>
/// The encrypted disk's request path (alignment, hole check, XTS) for 4 KiB requests over an
/// in-memory device, so the file system does not hide it. Run before and after a change to
/// EncryptedDisk; the re-key's two-DEK routing is measured in RekeyRoutingBenchmarks.
/// </summary>
public class EncryptedDiskBenchmarks
{
    private const long Size = 64 << 20;
    private EncryptedDisk _disk = null!;
    private DataEncryptionKey _key = null!;
    private readonly byte[] _buffer = new byte[4096];
    private long _offset;

    [GlobalSetup]
    public void Setup()
    {
        _key = DataEncryptionKey.Generate();
        _disk = new EncryptedDisk(new MemoryDevice(Size + (1 << 20)), new XtsSectorCipher(_key), 1 << 20, Size, 4096, false);
        new Random(7).NextBytes(_buffer);
        for (long o = 0; o < Size; o += 1 << 20) _disk.WriteAsync(o, new byte[1 << 20].Select((_, i) => (byte)(i + 1)).ToArray(), WriteOptions.None).AsTask().Wait();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _disk.DisposeAsync().AsTask().Wait();
        _key.Dispose();
    }

    private long Next() => _offset = (_offset + 4096 * 97) % Size;

    [Benchmark]
    public ValueTask Read4k() => _disk.ReadAsync(Next(), _buffer);

    [Benchmark]
    public ValueTask Write4k() => _disk.WriteAsync(Next(), _buffer, WriteOptions.None);
}

/// <summary>An IBlockDevice in memory: the cost of the layers above it, not of storage.</summary>
internal sealed class MemoryDevice(long size) : IBlockDevice
{
    private readonly byte[] _bytes = new byte[size];
    public BlockDeviceCapabilities Capabilities { get; } = new() { CanFlush = true, CanTrim = true, CanZero = true, MaximumPayload = 32 << 20 };
    public long Size => size;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default)
    {
        data.Span.CopyTo(_bytes.AsSpan((int)offset));
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default) =>
        ZeroAsync(offset, length, ZeroOptions.None, cancellationToken);

    public ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default)
    {
        _bytes.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlyList<Extent>>([new Extent(offset, length, ExtentFlags.Data)]);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
