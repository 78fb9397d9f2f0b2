namespace ManagedDisks.BlockDevices;

/// <summary>
/// What a device can do. The server advertises exactly these, so a filter must narrow them
/// honestly (an encrypting filter cannot promise fast zeroing its lower layer cannot keep).
/// </summary>
public sealed record BlockDeviceCapabilities
{
    public bool IsReadOnly { get; init; }
    public bool CanFlush { get; init; }
    public bool CanFua { get; init; }
    public bool CanTrim { get; init; }
    public bool CanZero { get; init; }
    public bool CanFastZero { get; init; }
    public bool CanExtents { get; init; }
    public bool CanCache { get; init; }

    /// <summary>A flush through any handle makes the writes of every handle durable.</summary>
    public bool CanMultiConn { get; init; }

    /// <summary>Smallest I/O unit the device handles without read-modify-write; a power of two.</summary>
    public uint MinimumBlockSize { get; init; } = 1;

    public uint PreferredBlockSize { get; init; } = 4096;

    /// <summary>Largest READ or WRITE payload the device accepts in one call.</summary>
    public uint MaximumPayload { get; init; } = 32 * 1024 * 1024;
}
