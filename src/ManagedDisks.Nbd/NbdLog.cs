using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Nbd;

/// <summary>Log messages of the NBD layer; event ids 1000–1099 are stable for operators' filters.</summary>
internal static partial class NbdLog
{
    [LoggerMessage(1000, LogLevel.Information, "Listening for NBD clients on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(1006, LogLevel.Information, "No longer accepting clients; requests now get ESHUTDOWN, connections close within {Grace}")]
    public static partial void Stopping(ILogger logger, TimeSpan grace);

    [LoggerMessage(1001, LogLevel.Debug, "Client {Peer} connected")]
    public static partial void Connected(ILogger logger, string peer);

    [LoggerMessage(1002, LogLevel.Information, "Client {Peer} attached export '{Export}'")]
    public static partial void Attached(ILogger logger, string peer, string export);

    [LoggerMessage(1003, LogLevel.Debug, "Client {Peer} disconnected")]
    public static partial void Disconnected(ILogger logger, string peer);

    [LoggerMessage(1004, LogLevel.Warning, "Refused client {Peer}: {Limit} connections are open (raise max_connections if this is legitimate load)")]
    public static partial void ConnectionLimit(ILogger logger, string peer, int limit);

    [LoggerMessage(1005, LogLevel.Warning, "Dropped client {Peer}: it did not finish negotiating within {Timeout}")]
    public static partial void HandshakeTimeout(ILogger logger, string peer, TimeSpan timeout);

    [LoggerMessage(1010, LogLevel.Warning, "Dropped client {Peer}: unsupported client flags 0x{Flags:x} (only fixed newstyle and NO_ZEROES are offered)")]
    public static partial void BadClientFlags(ILogger logger, string peer, uint flags);

    [LoggerMessage(1015, LogLevel.Warning, "Dropped client {Peer}: option {Option} from a non-fixed newstyle client, which can only send EXPORT_NAME")]
    public static partial void NonFixedOption(ILogger logger, string peer, uint option);

    [LoggerMessage(1016, LogLevel.Warning, "Dropped client {Peer}: clear-text bytes followed STARTTLS (possible injection, CVE-2021-3716)")]
    public static partial void TlsInjection(ILogger logger, string peer);

    [LoggerMessage(1017, LogLevel.Debug, "Client {Peer} upgraded to {Protocol}")]
    public static partial void TlsStarted(ILogger logger, string peer, string protocol);

    [LoggerMessage(1018, LogLevel.Warning, "Client {Peer}: certificate '{Subject}' does not chain to the configured client CA")]
    public static partial void ClientCertificateRejected(ILogger logger, string peer, string subject);

    [LoggerMessage(1011, LogLevel.Warning, "Dropped client {Peer}: bad option magic, the handshake stream is out of sync")]
    public static partial void BadOptionMagic(ILogger logger, string peer);

    [LoggerMessage(1012, LogLevel.Warning, "Dropped client {Peer}: option {Option} carries more data than the 64 KiB any option needs")]
    public static partial void OptionTooLong(ILogger logger, string peer, uint option);

    [LoggerMessage(1013, LogLevel.Information, "Client {Peer} asked for an unknown export {Export}; closing (EXPORT_NAME has no error reply)")]
    public static partial void ExportRefused(ILogger logger, string peer, string export);

    [LoggerMessage(1014, LogLevel.Debug, "Client {Peer}: option {Option} answered {Reply}: {Message}")]
    public static partial void OptionRefused(ILogger logger, string peer, uint option, OptionReplyType reply, string message);

    [LoggerMessage(1020, LogLevel.Warning, "Dropped client {Peer}: bad request magic, the request stream is out of sync")]
    public static partial void BadRequestMagic(ILogger logger, string peer);

    [LoggerMessage(1021, LogLevel.Warning, "Dropped client {Peer}: WRITE payload of {Length} bytes exceeds the advertised maximum of {Maximum}")]
    public static partial void PayloadTooLarge(ILogger logger, string peer, uint length, uint maximum);

    [LoggerMessage(1022, LogLevel.Debug, "Client {Peer}: {Command} at {Offset}+{Length} rejected with {Error}: {Reason}")]
    public static partial void RequestRejected(ILogger logger, string peer, NbdCommand command, ulong offset, uint length, NbdError error, string reason);

    [LoggerMessage(1023, LogLevel.Warning, "{Command} at {Offset}+{Length} failed with {Error}: {Message}")]
    public static partial void DeviceFailed(ILogger logger, NbdCommand command, ulong offset, uint length, DeviceError error, string message);

    [LoggerMessage(1024, LogLevel.Error, "Client {Peer}: a request failed unexpectedly")]
    public static partial void RequestFailed(ILogger logger, string peer, Exception exception);

    [LoggerMessage(1025, LogLevel.Error, "Client {Peer}: the connection failed unexpectedly")]
    public static partial void ConnectionFailed(ILogger logger, string peer, Exception exception);

    [LoggerMessage(1026, LogLevel.Warning, "Client {Peer} may not attach {Export}: {Reason}")]
    public static partial void ExportRefusedByPolicy(ILogger logger, string peer, string export, string reason);

    [LoggerMessage(1027, LogLevel.Warning, "Disconnected {Count} client(s) of {Export}")]
    public static partial void ExportDisconnected(ILogger logger, string export, int count);
}
