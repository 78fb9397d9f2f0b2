using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>Log messages of the daemon; event ids 2000–2099.</summary>
internal static partial class DaemonLog
{
    [LoggerMessage(2000, LogLevel.Information, "Created disk '{Disk}' ({Size}) as sparse file {Path}")]
    public static partial void DiskCreated(ILogger logger, string disk, string size, string path);

    [LoggerMessage(2001, LogLevel.Information, "Serving disk '{Disk}' ({Size}) from {Path}")]
    public static partial void DiskOpened(ILogger logger, string disk, string size, string path);

    [LoggerMessage(2002, LogLevel.Error, "Disk '{Disk}' is not served: {Reason}")]
    public static partial void DiskFailed(ILogger logger, string disk, string reason);

    [LoggerMessage(2003, LogLevel.Warning, "Disk '{Disk}': the configuration says {Configured} bytes but {Path} holds a {Actual}-byte disk; serving the disk's own size (resizing comes later)")]
    public static partial void SizeMismatch(ILogger logger, string disk, long configured, string path, long actual);

    [LoggerMessage(2004, LogLevel.Warning, "Disk '{Disk}': repaired header copy {Copy} of {Path} ({Problem})")]
    public static partial void HeaderRepaired(ILogger logger, string disk, int copy, string path, string problem);

    [LoggerMessage(2005, LogLevel.Information, "Platform key {Version} ready ({Path})")]
    public static partial void PlatformKeyReady(ILogger logger, string version, string path);

    [LoggerMessage(2006, LogLevel.Information, "Disk '{Disk}' moved from key {From} to {To}: DEK re-wrapped, data untouched")]
    public static partial void DiskRewrapped(ILogger logger, string disk, string from, string to);

    [LoggerMessage(2007, LogLevel.Information, "Disk '{Disk}' is served now: its key became usable")]
    public static partial void DiskRecovered(ILogger logger, string disk);

    [LoggerMessage(2010, LogLevel.Information, "ManagedDisks ready: {Disks} disk(s) on {Endpoints}")]
    public static partial void Ready(ILogger logger, int disks, string endpoints);

    [LoggerMessage(2011, LogLevel.Information, "ManagedDisks stopping: finishing requests in flight and flushing disks")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(2012, LogLevel.Information, "ManagedDisks stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(2013, LogLevel.Warning, "Disk {Disk} shut down: {Reason}")]
    public static partial void DiskShutDown(ILogger logger, string disk, string reason);

    [LoggerMessage(2014, LogLevel.Information, "Disk {Disk} detached")]
    public static partial void DiskDetached(ILogger logger, string disk);

    [LoggerMessage(2015, LogLevel.Warning, "Disk {Disk}: its key is not usable ({Reason}); it is served until {Deadline:u}, then shut down")]
    public static partial void GraceStarted(ILogger logger, string disk, string reason, DateTimeOffset deadline);

    [LoggerMessage(2016, LogLevel.Information, "Disk {Disk}: its key is usable again; the grace period is over and nothing changes for its clients")]
    public static partial void GraceCancelled(ILogger logger, string disk);

    [LoggerMessage(2017, LogLevel.Information, "Disk {Disk}: its key is usable again; the disk is served again")]
    public static partial void DiskRestored(ILogger logger, string disk);

    [LoggerMessage(2018, LogLevel.Warning, "on_key_revoked for disk {Disk} exited with {ExitCode}: {Output}")]
    public static partial void HookFailed(ILogger logger, string disk, int exitCode, string output);

    [LoggerMessage(2019, LogLevel.Information, "on_key_revoked ran for disk {Disk}")]
    public static partial void HookRan(ILogger logger, string disk);

    [LoggerMessage(2020, LogLevel.Warning, "Key check: {Reason}")]
    public static partial void KeyCheckFailed(ILogger logger, string reason);

    [LoggerMessage(2021, LogLevel.Information, "Set {Set} follows its key's newest version: {Kind} {Name} re-wrapped from {From} to {To}")]
    public static partial void AutoRotated(ILogger logger, string set, string kind, string name, string from, string to);

    [LoggerMessage(2022, LogLevel.Information, "Snapshot {Snapshot} of disk {Disk} taken ({How})")]
    public static partial void SnapshotTaken(ILogger logger, string snapshot, string disk, string how);
}
