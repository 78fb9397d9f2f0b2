using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Lifecycle;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Enforces the promises about keys. Every <c>key_poll_interval</c> it asks the stores whether
/// each served disk's key can still be used: a key that was disabled, deleted, expired or whose
/// grant was removed starts the disk's grace period (<c>revoke_grace</c>; an unreachable store
/// gets <c>unreachable_grace</c>), runs <c>on_key_revoked</c>, and at the deadline the disk is shut
/// down. A key usable again before then cancels the timer unnoticed by clients; after a shutdown
/// it brings the disk back. It also opens disks that wait for their key.
/// The deadlines are checked every second apart from the stores, so a hung HSM cannot hold one off.
/// </summary>
internal sealed class KeyLifecycleService(DaemonSettings settings, DiskManager disks, GraceTimers timers, RevocationHook hook,
    KeyStatusBoard board, ILogger<KeyLifecycleService> logger) : BackgroundService
{
    private const string Actor = "managed-disks";
    private Task<IReadOnlyList<(OpenedDisk Disk, KeyAccess Access)>>? _check;
    private Task _retry = Task.CompletedTask;

    private TimeSpan CheckPatience => settings.KeyPollInterval > TimeSpan.FromSeconds(10) ? settings.KeyPollInterval : TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        disks.Reopened += disk => Observe(disk.Settings.Name, disk.Header.KeySlots[0], KeyAccess.Usable);
        var deadlines = EnforceDeadlinesAsync(stoppingToken);
        using var timer = new PeriodicTimer(settings.KeyPollInterval);
        try
        {
            // The first poll runs at once, so that status shows key states from the start.
            do
            {
                // A hung store must not stop the next poll from noticing it: each step runs at most once at a time.
                if (_retry.IsCompleted) _retry = Task.Run(disks.RetryWaitingAsync, stoppingToken);
                await PollServedDisksAsync(stoppingToken).ConfigureAwait(false);
            } while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
        await deadlines.ConfigureAwait(false);
    }

    private async Task PollServedDisksAsync(CancellationToken stoppingToken)
    {
        IReadOnlyList<(OpenedDisk Disk, KeyAccess Access)> results;
        if (_check is { IsCompleted: false })
        {
            results = Unreachable($"the key stores have not answered the previous key check (started over {settings.KeyPollInterval} ago); check the HSM or vault");
        }
        else
        {
            _check = Task.Run(CheckServedDisks, stoppingToken);
            var finished = await Task.WhenAny(_check, Task.Delay(CheckPatience, stoppingToken)).ConfigureAwait(false);
            results = finished == _check
                ? await _check.ConfigureAwait(false)
                : Unreachable($"the key stores did not answer a key check within {Units.FormatDuration(CheckPatience)}; check the HSM or vault");
        }
        foreach (var (disk, access) in results)
            if (disks.Find(disk.Settings.Name) is not null) Observe(disk.Settings.Name, disk.Header.KeySlots[0], access);
    }

    private IReadOnlyList<(OpenedDisk, KeyAccess)> Unreachable(string reason)
    {
        DaemonLog.KeyCheckFailed(logger, reason);
        return disks.Disks.Select(d => (d, d.Header.KeySlots[0].KeyStore == PlatformKeyStore.StoreName
            ? KeyAccess.Usable
            : new KeyAccess(KeyUsability.Unreachable, $"disk {d.Settings.Name}: {reason}"))).ToList();
    }

    private IReadOnlyList<(OpenedDisk, KeyAccess)> CheckServedDisks()
    {
        var served = disks.Disks;
        try
        {
            using var keys = KeySession.OpenAvailable(settings, out var failures);
            // Every set's key state for status, read from the stores this check opened anyway.
            foreach (var set in settings.EncryptionSets)
                board.Record(set.Name, keys.Store(set.KeyStore) is { } store ? SetKeyStatus.From(store, set) : SetKeyStatus.Unreachable(failures[set.KeyStore]),
                    DateTimeOffset.UtcNow);
            var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
            return served.Select(d => (d, failures.TryGetValue(d.Header.KeySlots[0].KeyStore, out string? failure)
                ? new KeyAccess(KeyUsability.Unreachable, $"disk {d.Settings.Name}: key store '{d.Header.KeySlots[0].KeyStore}' cannot be opened: {failure}")
                : opener.CheckAccess(d))).ToList();
        }
        catch (KeyStoreException e)
        {
            foreach (var set in settings.EncryptionSets) board.Record(set.Name, SetKeyStatus.Unreachable(e.Message), DateTimeOffset.UtcNow);
            return Unreachable(e.Message);
        }
    }

    /// <summary>Feeds one observation to the clocks and acts on what changed.</summary>
    private void Observe(string disk, KeySlot slot, KeyAccess access)
    {
        var (change, timer) = timers.Observe(disk, access);
        if (change == GraceChange.Started)
        {
            DaemonLog.GraceStarted(logger, disk, timer!.Reason, timer.Deadline);
            bool hookStarted = hook.Run(timer);
            Audit("grace-started", slot, disk, $"{timer.Kind}: {timer.Reason}; deadline {timer.Deadline:u}{(hookStarted ? "; on_key_revoked started" : "")}");
        }
        else if (change == GraceChange.Cancelled)
        {
            if (timer!.Expired)
            {
                DaemonLog.DiskRestored(logger, disk);
                Audit("restored", slot, disk, "the key is usable again; the disk is served again");
            }
            else
            {
                DaemonLog.GraceCancelled(logger, disk);
                Audit("grace-cancelled", slot, disk, "the key is usable again before the deadline");
            }
        }
    }

    private async Task EnforceDeadlinesAsync(CancellationToken stoppingToken)
    {
        using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await tick.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                foreach (var timer in timers.TakeExpired())
                {
                    var disk = disks.Find(timer.Disk);
                    if (disk is null) continue; // not served (waiting for its key, detached): nothing to take away
                    await disks.ShutDownAsync(timer.Disk, UnservedReason.WaitingForKey, DiskManager.ShutdownMessage(timer)).ConfigureAwait(false);
                    Audit("shutdown", disk.Header.KeySlots[0], timer.Disk,
                        $"grace period over: I/O failed, clients disconnected, DEK wiped; {timer.Reason}");
                }
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }

    private void Audit(string result, KeySlot slot, string disk, string detail)
    {
        try
        {
            AuditLog.Open(settings.AuditLog).Append(new AuditRecord(Actor, "key-lifecycle", result, slot.KeyStore, slot.KeyName, slot.KeyVersion, disk, detail));
        }
        catch (IOException e)
        {
            DaemonLog.DiskFailed(logger, disk, $"cannot write the audit record '{result}': {e.Message}");
        }
    }
}
