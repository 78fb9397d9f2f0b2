namespace ManagedDisks.BlockDevices;

/// <summary>A run of bytes with the same allocation state.</summary>
public readonly record struct Extent(long Offset, long Length, ExtentFlags Flags)
{
    public long End => Offset + Length;
}

[Flags]
public enum ExtentFlags
{
    /// <summary>Allocated data.</summary>
    Data = 0,
    /// <summary>Not allocated: a write here may need space.</summary>
    Hole = 1,
    /// <summary>Reads as zeros.</summary>
    Zero = 2,
}
