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
internal sealed class NbdHostedService(DaemonSettings settings, DiskRegistry registry, NbdServer server, ILogger<NbdHostedService> logger)
    : IHostedService
{
    private readonly List<IBlockDevice> _devices = [];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(settings.StateDir);
        var audit = AuditLog.Open(settings.AuditLog);
        var stores = new Dictionary<string, IKeyStore>();
        PlatformKeyStore platformKey;
        try
        {
            platformKey = PlatformKeyStore.OpenOrCreate(settings.PlatformKeyFile, settings.PlatformKeySecretFile);
            foreach (var store in settings.KeyStores) stores[store.Name] = KeyStoreFactory.Open(store);
        }
        catch (KeyStoreException e)
        {
            foreach (var store in stores.Values) store.Dispose();
            throw new ConfigException(e.Message);
        }
        // Private keys stay loaded only while disks are opened; the DEKs then live in the disks.
        using (platformKey)
        {
            DaemonLog.PlatformKeyReady(logger, platformKey.KeyVersion, settings.PlatformKeyFile);
            var opener = new EncryptedDiskOpener(new KeyAgent(stores, platformKey, audit), settings.EncryptionSets, logger);
            foreach (var disk in settings.Disks) await OpenDiskAsync(opener, disk).ConfigureAwait(false);
            foreach (var store in stores.Values) store.Dispose();
        }
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
    }

    private async Task OpenDiskAsync(EncryptedDiskOpener opener, DiskSettings disk)
    {
        try
        {
            var device = await opener.OpenOrCreateAsync(disk).ConfigureAwait(false);
            _devices.Add(device);
            registry.Add(new NbdExport(disk.Name, disk.Description, device));
            DaemonLog.DiskOpened(logger, disk.Name, Units.FormatSize(device.Size), disk.Path);
        }
        catch (Exception e) when (e is BlockDeviceException or DiskFormatException or KeyStoreException or IOException or UnauthorizedAccessException)
        {
            // One bad disk must not take the others down.
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
