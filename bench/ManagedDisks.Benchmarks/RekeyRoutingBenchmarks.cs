using BenchmarkDotNet.Attributes;
using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Benchmarks;

/// <summary>
/// 4 KiB requests while a re-key is in progress: every sector routed to the old or the new DEK
/// by the watermark (half the disk each side), compared with EncryptedDiskBenchmarks' single DEK.
/// </summary>
public class RekeyRoutingBenchmarks
{
    private const long Size = 64 << 20;
    private EncryptedDisk _disk = null!;
    private DataEncryptionKey _old = null!, _new = null!;
    private readonly byte[] _buffer = new byte[4096];
    private long _offset;

    [GlobalSetup]
    public void Setup()
    {
        _old = DataEncryptionKey.Generate();
        _new = DataEncryptionKey.Generate();
        _disk = new EncryptedDisk(new MemoryDevice(Size + (1 << 20)), new XtsSectorCipher(_old), 1 << 20, Size, 4096, false);
        var state = DiskReencryption.Plan(KeyDigests.Create(_new), []) with { Watermark = Size / 2 };
        DiskReencryption.Attach(_disk, new XtsSectorCipher(_new), state);
        new Random(7).NextBytes(_buffer);
        for (long o = 0; o < Size; o += 1 << 20) _disk.WriteAsync(o, new byte[1 << 20].Select((_, i) => (byte)(i + 1)).ToArray(), WriteOptions.None).AsTask().Wait();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _disk.DisposeAsync().AsTask().Wait();
        _old.Dispose();
        _new.Dispose();
    }

    private long Next() => _offset = (_offset + 4096 * 97) % Size;

    [Benchmark]
    public ValueTask Read4kRouted() => _disk.ReadAsync(Next(), _buffer);

    [Benchmark]
    public ValueTask Write4kRouted() => _disk.WriteAsync(Next(), _buffer, WriteOptions.None);
}
