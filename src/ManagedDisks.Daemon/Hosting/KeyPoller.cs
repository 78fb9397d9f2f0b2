using ManagedDisks.Daemon.Configuration;
using Microsoft.Extensions.Hosting;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Every <c>[timers] key_poll_interval</c>, re-reads key state so that a fix made in the vault
/// (a grant, an enable, a recover) takes effect without a restart: disks refused for a key
/// reason are opened as soon as their key can be used.
/// </summary>
internal sealed class KeyPoller(DaemonSettings settings, DiskManager disks) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.KeyPollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
                await disks.RetryWaitingAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }
}
