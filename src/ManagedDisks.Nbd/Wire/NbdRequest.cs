namespace ManagedDisks.Nbd.Wire;

/// <summary>A transmission-phase request header (the payload of a WRITE travels separately).</summary>
internal readonly record struct NbdRequest(CommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    public bool Has(CommandFlags flag) => (Flags & flag) != 0;
}
