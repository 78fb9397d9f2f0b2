using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Agent;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Nbd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>Opens the configured disks and serves them until the host stops.</summary>
internal sealed class NbdHostedService(DaemonSettings settings, DiskRegistry registry, DiskManager disks, NbdServer server,
    IHostApplicationLifetime lifetime, ILogger<NbdHostedService> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(settings.StateDir);
        int declared = await disks.OpenAllAsync().ConfigureAwait(false);
        if (declared > 0 && disks.Disks.Count == 0 && disks.WaitingForKeys == 0)
            throw new ConfigException("no disk could be opened (see the errors above); nothing to serve");
        // Disks refused for a key reason are retried by the key poller.

        var endpoints = new List<string>();
        var activated = SocketActivation.Take();
        foreach (var socket in activated) endpoints.Add(NbdServer.Describe(server.Adopt(socket)));
        // With socket activation, the sockets systemd made are the listen list.
        foreach (var address in activated.Count > 0 ? [] : settings.Listen)
        {
            if (address.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint unix) SocketGuard.EnsureFree(unix.ToString()!);
            try
            {
                endpoints.Add(NbdServer.Describe(server.Listen(address.EndPoint)));
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new ConfigException($"cannot listen on {address.Text}: {e.Message}; is another daemon using it? Change [daemon] listen or stop the other one");
            }
        }
        // "Ready" only once every service (the admin API too) has started.
        lifetime.ApplicationStarted.Register(() =>
        {
            DaemonLog.Ready(logger, disks.Disks.Count, string.Join(", ", endpoints));
            if (settings.Source == ConfigLoader.EmbeddedDefaultName) Console.Out.Write(AttachInstructions.For(settings, registry));
        });
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        DaemonLog.Stopping(logger);
        await server.StopAsync().ConfigureAwait(false);
        await disks.DisposeAsync().ConfigureAwait(false);
        DaemonLog.Stopped(logger);
    }
}
