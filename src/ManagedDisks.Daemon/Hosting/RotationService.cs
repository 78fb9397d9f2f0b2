using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys.Audit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Automatic rotation: every <c>rotation_check_interval</c>, each encryption set with
/// <c>auto_rotate = true</c> (and no pinned key_version) follows its key's newest version: the
/// DEK of every disk and snapshot in it is re-wrapped, without touching data or clients.
/// </summary>
internal sealed class RotationService(DaemonSettings settings, DiskManager disks, ILogger<RotationService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var sets = settings.EncryptionSets.Where(s => s.AutoRotate && s.KeyVersion is null).ToList();
        if (sets.Count == 0) return;
        using var timer = new PeriodicTimer(settings.RotationCheckInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
                foreach (var set in sets) await FollowAsync(set.Name).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }

    private async Task FollowAsync(string set)
    {
        try
        {
            var done = await disks.RewrapSetAsync(set).ConfigureAwait(false);
            foreach (var item in done)
            {
                DaemonLog.AutoRotated(logger, set, item.Kind, item.Name, item.From, item.To);
                AuditLog.Open(settings.AuditLog).Append(new AuditRecord("managed-disks", "rotation", "ok", Disk: item.Name,
                    Detail: $"auto_rotate of set {set}: {item.Kind} {item.Name} re-wrapped from version {item.From} to {item.To}"));
            }
        }
        catch (Exception e) when (e is AdminException or IOException)
        {
            DaemonLog.DiskFailed(logger, $"(set {set})", $"automatic rotation: {e.Message}");
        }
    }
}
