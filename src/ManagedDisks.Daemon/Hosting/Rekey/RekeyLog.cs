using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting.Rekey;

/// <summary>Log messages of online re-keying; event ids 2100–2109.</summary>
internal static partial class RekeyLog
{
    [LoggerMessage(2100, LogLevel.Information, "Disk '{Disk}': re-key started; its data moves to a new DEK wrapped by {Key}")]
    public static partial void Started(ILogger logger, string disk, string key);

    [LoggerMessage(2101, LogLevel.Information, "Disk '{Disk}': re-key resumed at {Percent:0.0}% ({Watermark} of {Size} bytes under the new DEK)")]
    public static partial void Resumed(ILogger logger, string disk, double percent, long watermark, long size);

    [LoggerMessage(2102, LogLevel.Information, "Disk '{Disk}': re-key {Percent:0}% done")]
    public static partial void Progress(ILogger logger, string disk, double percent);

    [LoggerMessage(2103, LogLevel.Information, "Disk '{Disk}': re-key completed; all {Size} bytes are under the new DEK wrapped by {Key}, and the old DEK is wiped ({Rate:0.0} MiB/s)")]
    public static partial void Completed(ILogger logger, string disk, long size, string key, double rate);

    [LoggerMessage(2104, LogLevel.Warning, "Disk '{Disk}': re-key paused at {Percent:0.0}% ({Reason}); it resumes when the disk is served again")]
    public static partial void Interrupted(ILogger logger, string disk, double percent, string reason);

    [LoggerMessage(2105, LogLevel.Error, "Disk '{Disk}': re-key failed at {Percent:0.0}%: {Reason}; the disk stays readable, and `managed-disks disk rekey {Disk}` resumes it")]
    public static partial void Failed(ILogger logger, string disk, double percent, string reason);
}
