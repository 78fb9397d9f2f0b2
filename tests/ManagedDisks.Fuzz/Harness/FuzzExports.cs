using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>The exports the handshake and connection targets serve, and what a device may assume of a request.</summary>
internal static class FuzzExports
{
    public static readonly BlockDeviceCapabilities Writable = new()
    {
        CanFlush = true, CanFua = true, CanTrim = true, CanZero = true, CanFastZero = true,
        CanExtents = true, CanCache = true, CanMultiConn = true,
        MinimumBlockSize = 512, PreferredBlockSize = 4096,
    };

    public static readonly BlockDeviceCapabilities ReadOnly = Writable with { IsReadOnly = true };

    /// <summary>
    /// "disk0" (also the default export, with a description), "ro" (read-only, like a daemon's
    /// read_only disk) and "empty" (size zero), each a fresh in-memory device.
    /// </summary>
    public static FixedExportCatalog NewCatalog(FindingLog findings) => new(
    [
        new NbdExport("disk0", "the first disk", new MemoryBlockDevice(1 << 20, Writable, findings)),
        new NbdExport("ro", "", new MemoryBlockDevice(64 * 1024, ReadOnly, findings)),
        new NbdExport("empty", "nothing here", new MemoryBlockDevice(0, Writable, findings)),
    ]);

    /// <summary>
    /// The contract between the wire layer and a device, restated independently of
    /// <see cref="RequestValidator"/>: a request that reaches a device must satisfy it.
    /// </summary>
    public static void CheckAcceptable(in NbdRequest request, BlockDeviceCapabilities caps, long size, bool metaContextSelected)
    {
        string? broken = Violation(request, caps, size, metaContextSelected);
        if (broken is not null) throw new FuzzFinding($"accepted {request} for a {size}-byte export: {broken}");
    }

    private static string? Violation(in NbdRequest request, BlockDeviceCapabilities caps, long size, bool metaContextSelected)
    {
        var command = request.Command;
        if (command is not (NbdCommand.Read or NbdCommand.Write or NbdCommand.Flush or NbdCommand.Trim
            or NbdCommand.Cache or NbdCommand.WriteZeroes or NbdCommand.BlockStatus))
            return "not a command a device runs";
        if (caps.IsReadOnly && command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes) return "writes to a read-only export";
        if (command == NbdCommand.BlockStatus && !metaContextSelected) return "block status without a meta context";
        if (command == NbdCommand.Flush) return request.Offset == 0 && request.Length == 0 ? null : "flush with a range";
        if (request.Length == 0) return "zero length";
        if (request.Offset > (ulong)size || request.Length > (ulong)size - request.Offset) return "past the end";
        if (command is NbdCommand.Read or NbdCommand.Write && request.Length > caps.MaximumPayload) return "over the payload limit";
        bool alignmentApplies = command is not (NbdCommand.BlockStatus or NbdCommand.Cache);
        if (alignmentApplies && (request.Offset % caps.MinimumBlockSize != 0 || request.Length % caps.MinimumBlockSize != 0)) return "unaligned";
        return null;
    }
}
