using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Nbd;

/// <summary>The one place device failures become protocol errors.</summary>
internal static class ErrorMapping
{
    public static NbdError ToWire(DeviceError error) => error switch
    {
        DeviceError.NoSpace => NbdError.NoSpace,
        DeviceError.ReadOnly => NbdError.Perm,
        DeviceError.InvalidArgument => NbdError.Invalid,
        DeviceError.NotSupported => NbdError.NotSupported,
        DeviceError.Overflow => NbdError.Overflow,
        DeviceError.ShuttingDown => NbdError.Shutdown,
        _ => NbdError.Io,
    };
}
