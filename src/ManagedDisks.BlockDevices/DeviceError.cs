namespace ManagedDisks.BlockDevices;

/// <summary>The failures a device may report; the wire layer maps them to protocol errors in one place.</summary>
public enum DeviceError
{
    InputOutput,
    NoSpace,
    ReadOnly,
    InvalidArgument,
    NotSupported,
    Overflow,
    ShuttingDown,
}

public sealed class BlockDeviceException : Exception
{
    public BlockDeviceException(DeviceError error, string message, Exception? inner = null)
        : base(message, inner) => Error = error;

    public DeviceError Error { get; }
}
