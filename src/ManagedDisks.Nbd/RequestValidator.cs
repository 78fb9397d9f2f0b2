using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Nbd;

/// <summary>
/// Checks a request against the negotiated session and the export before any device sees it
/// (nbdkit's validate_request is the model): devices may then assume in-range, well-formed calls.
/// </summary>
internal static class RequestValidator
{
    private const CommandFlags KnownFlags = CommandFlags.Fua | CommandFlags.NoHole | CommandFlags.DontFragment
                                            | CommandFlags.ReqOne | CommandFlags.FastZero;

    public static (NbdError Error, string? Reason) Validate(in NbdRequest request, TransmissionFlags advertised,
        BlockDeviceCapabilities caps, long size, bool metaContextSelected)
    {
        var command = request.Command;
        if (command is < NbdCommand.Read or > NbdCommand.BlockStatus || command == NbdCommand.Disconnect)
            return (NbdError.Invalid, $"unknown command {(ushort)command}");

        if ((request.Flags & ~KnownFlags) != 0) return (NbdError.Invalid, $"unknown flags 0x{(ushort)request.Flags:x}");
        if (request.Has(CommandFlags.Fua) && (advertised & TransmissionFlags.SendFua) == 0) return (NbdError.Invalid, "FUA was not advertised");
        if (request.Has(CommandFlags.NoHole) && command != NbdCommand.WriteZeroes) return (NbdError.Invalid, "NO_HOLE applies only to WRITE_ZEROES");
        if (request.Has(CommandFlags.FastZero) && (command != NbdCommand.WriteZeroes || (advertised & TransmissionFlags.SendFastZero) == 0))
            return (NbdError.Invalid, "FAST_ZERO applies only to WRITE_ZEROES when advertised");
        if (request.Has(CommandFlags.DontFragment) && (command != NbdCommand.Read || (advertised & TransmissionFlags.SendDf) == 0))
            return (NbdError.Invalid, "DF applies only to READ with structured replies");
        if (request.Has(CommandFlags.ReqOne) && command != NbdCommand.BlockStatus) return (NbdError.Invalid, "REQ_ONE applies only to BLOCK_STATUS");

        bool writes = command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;
        if (writes && caps.IsReadOnly) return (NbdError.Perm, "the export is read-only");

        switch (command)
        {
            case NbdCommand.Flush:
                if (!caps.CanFlush) return (NbdError.Invalid, "FLUSH was not advertised");
                if (request.Offset != 0 || request.Length != 0) return (NbdError.Invalid, "FLUSH takes no offset or length");
                return (NbdError.None, null);
            case NbdCommand.Trim when !caps.CanTrim:
                return (NbdError.Invalid, "TRIM was not advertised");
            case NbdCommand.WriteZeroes when !caps.CanZero:
                return (NbdError.Invalid, "WRITE_ZEROES was not advertised");
            case NbdCommand.BlockStatus when !metaContextSelected:
                return (NbdError.Invalid, "BLOCK_STATUS needs a meta context selected with SET_META_CONTEXT");
            case NbdCommand.Read when request.Length > caps.MaximumPayload:
                return (request.Has(CommandFlags.DontFragment) ? NbdError.Overflow : NbdError.Invalid,
                        $"READ longer than the maximum payload of {caps.MaximumPayload} bytes");
        }

        if (request.Length == 0) return (NbdError.Invalid, "zero-length request");

        // Written as two comparisons so that offset + length cannot wrap (nbd-server 6d9223e).
        if (request.Offset > (ulong)size || request.Length > (ulong)size - request.Offset)
            return (command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.NoSpace : NbdError.Invalid, "request beyond the end of the export");

        uint minimum = caps.MinimumBlockSize;
        if (minimum > 1 && command != NbdCommand.BlockStatus && command != NbdCommand.Cache
            && (request.Offset % minimum != 0 || request.Length % minimum != 0))
            return (NbdError.Invalid, $"request not aligned to the minimum block size {minimum}");

        return (NbdError.None, null);
    }
}
