using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Nbd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>Opens the configured disks and serves them until the host stops.</summary>
internal sealed class NbdHostedService(DaemonSettings settings, DiskRegistry registry, NbdServer server, ILogger<NbdHostedService> logger)
    : IHostedService
{
    private readonly List<IBlockDevice> _devices = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(settings.StateDir);
        foreach (var disk in settings.Disks) OpenDisk(disk);
        if (settings.Disks.Count > 0 && _devices.Count == 0)
            throw new ConfigException("no disk could be opened (see the errors above); nothing to serve");

        var endpoints = new List<string>();
        foreach (var address in settings.Listen)
        {
            if (address.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint unix) EnsureSocketFree(unix.ToString()!);
            try
            {
                endpoints.Add(NbdServer.Describe(server.Listen(address.EndPoint)));
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new ConfigException($"cannot listen on {address.Text}: {e.Message}; is another daemon using it? Change [daemon] listen or stop the other one");
            }
        }
        DaemonLog.Ready(logger, _devices.Count, string.Join(", ", endpoints));
        if (settings.Source == ConfigLoader.EmbeddedDefaultName) Console.Out.Write(AttachInstructions.For(settings, registry));
        return Task.CompletedTask;
    }

    private void OpenDisk(DiskSettings disk)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(disk.Path)!);
            if (SparseFile.CreateIfMissing(disk.Path, disk.Size))
                DaemonLog.DiskCreated(logger, disk.Name, Units.FormatSize(disk.Size), disk.Path);
            var file = SparseFile.Open(disk.Path, disk.ReadOnly);
            if (file.Size != disk.Size) DaemonLog.SizeMismatch(logger, disk.Name, disk.Size, disk.Path, file.Size);
            _devices.Add(file);
            registry.Add(new NbdExport(disk.Name, disk.Description, file));
            DaemonLog.DiskOpened(logger, disk.Name, Units.FormatSize(file.Size), disk.Path);
        }
        catch (Exception e) when (e is BlockDeviceException or IOException or UnauthorizedAccessException)
        {
            DaemonLog.DiskFailed(logger, disk.Name, e.Message);
        }
    }

    /// <summary>Refuses to take over a socket another live daemon is serving; removes a stale one.</summary>
    private static void EnsureSocketFree(string path)
    {
        if (!File.Exists(path)) return;
        using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        try
        {
            probe.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        }
        catch (System.Net.Sockets.SocketException)
        {
            return; // nobody listens: a leftover of a stopped daemon, which Listen replaces
        }
        throw new ConfigException($"{path} is served by another running daemon; stop it or choose another [daemon] listen path");
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        DaemonLog.Stopping(logger);
        await server.StopAsync().ConfigureAwait(false);
        foreach (var device in _devices)
        {
            try { await device.FlushAsync(CancellationToken.None).ConfigureAwait(false); }
            catch (BlockDeviceException e) { DaemonLog.DiskFailed(logger, "(flush at stop)", e.Message); }
            await device.DisposeAsync().ConfigureAwait(false);
        }
        DaemonLog.Stopped(logger);
    }
}
