using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Nbd;

/// <summary>Advertises exactly what the device can do, so no client sends what we would refuse.</summary>
internal static class ExportFlags
{
    public static TransmissionFlags For(BlockDeviceCapabilities caps, bool structuredReplies)
    {
        var flags = TransmissionFlags.HasFlags;
        if (caps.IsReadOnly) flags |= TransmissionFlags.ReadOnly;
        if (caps.CanFlush) flags |= TransmissionFlags.SendFlush;
        if (caps.CanFua) flags |= TransmissionFlags.SendFua;
        if (caps.CanTrim && !caps.IsReadOnly) flags |= TransmissionFlags.SendTrim;
        if (caps.CanZero && !caps.IsReadOnly)
        {
            flags |= TransmissionFlags.SendWriteZeroes;
            if (caps.CanFastZero) flags |= TransmissionFlags.SendFastZero;
        }
        // DF must be clear when structured replies were not negotiated (spec, transmission flags).
        if (structuredReplies) flags |= TransmissionFlags.SendDf;
        if (caps.CanMultiConn) flags |= TransmissionFlags.CanMultiConn;
        if (caps.CanCache) flags |= TransmissionFlags.SendCache;
        return flags;
    }
}
