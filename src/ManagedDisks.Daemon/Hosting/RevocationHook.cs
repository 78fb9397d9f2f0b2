using System.Diagnostics;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys.Lifecycle;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Runs <c>[daemon] on_key_revoked</c> when a disk's grace period starts, e.g. to shut a VM down
/// cleanly before its disk goes away. The disk name and the deadline (ISO 8601, UTC) are
/// appended as arguments and also given as MANAGED_DISKS_DISK, MANAGED_DISKS_DEADLINE and
/// MANAGED_DISKS_REASON. It runs in the background: a slow hook delays nothing.
/// </summary>
internal sealed class RevocationHook(DaemonSettings settings, ILogger<RevocationHook> logger)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    /// <summary>Starts the hook; false when none is configured or it cannot be started (logged).</summary>
    public bool Run(GraceTimer timer)
    {
        if (settings.OnKeyRevoked.Count == 0) return false;
        string deadline = timer.Deadline.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ");
        var start = new ProcessStartInfo(settings.OnKeyRevoked[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in settings.OnKeyRevoked.Skip(1)) start.ArgumentList.Add(argument);
        start.ArgumentList.Add(timer.Disk);
        start.ArgumentList.Add(deadline);
        start.Environment["MANAGED_DISKS_DISK"] = timer.Disk;
        start.Environment["MANAGED_DISKS_DEADLINE"] = deadline;
        start.Environment["MANAGED_DISKS_REASON"] = timer.Reason;
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            DaemonLog.HookFailed(logger, timer.Disk, -1, $"cannot start {settings.OnKeyRevoked[0]}: {e.Message}; fix [daemon] on_key_revoked");
            return false;
        }
        _ = WatchAsync(process, timer.Disk);
        return true;
    }

    private async Task WatchAsync(Process process, string disk)
    {
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var patience = new CancellationTokenSource(Patience);
            try
            {
                await process.WaitForExitAsync(patience.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                DaemonLog.HookFailed(logger, disk, -1, $"still running after {Patience.TotalMinutes} minutes; killed");
                return;
            }
            string text = ((await output.ConfigureAwait(false)) + (await errors.ConfigureAwait(false))).Trim();
            if (process.ExitCode == 0) DaemonLog.HookRan(logger, disk);
            else DaemonLog.HookFailed(logger, disk, process.ExitCode, text.Length > 500 ? text[..500] : text);
        }
    }
}
