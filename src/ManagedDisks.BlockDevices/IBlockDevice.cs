namespace ManagedDisks.BlockDevices;

/// <summary>
/// The one contract between the NBD server and whatever stores the bytes (nbdkit's plugin
/// contract is the model). Callers validate ranges and flags against <see cref="Capabilities"/>
/// before calling; implementations may assume a valid request and report failures by throwing
/// <see cref="BlockDeviceException"/> with an errno-style <see cref="DeviceError"/>.
/// </summary>
public interface IBlockDevice : IAsyncDisposable
{
    BlockDeviceCapabilities Capabilities { get; }

    /// <summary>Logical size in bytes.</summary>
    long Size { get; }

    /// <summary>Fills <paramref name="buffer"/> entirely from <paramref name="offset"/>; holes read as zeros.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default);

    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default);

    /// <summary>Makes every write that completed before this call durable.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Discards the range; afterwards its content is unspecified (a hole here reads as zeros).</summary>
    ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default);

    /// <summary>Makes the range read as zeros, punching a hole unless <see cref="ZeroOptions.NoHole"/>.</summary>
    ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default);

    /// <summary>Hint that the range will be read soon.</summary>
    ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>
    /// Describes the allocation of the range starting at <paramref name="offset"/>. Returns at
    /// least one extent; together they cover at least one byte and at most <paramref name="length"/>.
    /// </summary>
    ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default);
}

[Flags]
public enum WriteOptions
{
    None = 0,
    /// <summary>Force unit access: durable before completion.</summary>
    Fua = 1,
}

[Flags]
public enum ZeroOptions
{
    None = 0,
    Fua = 1,
    /// <summary>The range must stay allocated (no hole).</summary>
    NoHole = 2,
    /// <summary>Fail with <see cref="DeviceError.NotSupported"/> rather than fall back to writing zeros.</summary>
    FastOnly = 4,
}
