using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Nbd;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>A failed admin request; the message says what to do. <see cref="NotFound"/> maps to HTTP 404.</summary>
internal sealed class AdminException(string message, bool notFound = false) : Exception(message)
{
    public bool NotFound { get; } = notFound;
}

/// <summary>
/// Owns the served disks: opens them at start, creates disks and moves them between encryption
/// sets at run time (one change at a time), and closes them at stop.
/// </summary>
internal sealed class DiskManager(DaemonSettings settings, DiskRegistry registry, ILogger<DiskManager> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _changes = new(1, 1);
    private readonly Dictionary<string, OpenedDisk> _disks = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly Dictionary<string, DiskSettings> _waitingForKeys = new(StringComparer.Ordinal);

    public IReadOnlyList<OpenedDisk> Disks
    {
        get { lock (_gate) return _disks.Values.OrderBy(d => d.Settings.Name, StringComparer.Ordinal).ToList(); }
    }

    public int WaitingForKeys
    {
        get { lock (_gate) return _waitingForKeys.Count; }
    }

    /// <summary>Opens every configured disk; one that fails is logged and skipped.</summary>
    public async Task<int> OpenAllAsync()
    {
        var disks = RuntimeChanges.Load(settings).Apply(settings);
        using var keys = OpenKeys();
        DaemonLog.PlatformKeyReady(logger, keys.PlatformKeyVersion, settings.PlatformKeyFile);
        var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
        foreach (var disk in disks) await TryOpenAsync(opener, disk).ConfigureAwait(false);
        return disks.Count;
    }

    private async Task<bool> TryOpenAsync(EncryptedDiskOpener opener, DiskSettings disk)
    {
        try
        {
            Serve(await opener.OpenOrCreateAsync(disk).ConfigureAwait(false));
            lock (_gate) _waitingForKeys.Remove(disk.Name);
            return true;
        }
        catch (KeyStoreException e)
        {
            // A key problem can be fixed from outside (a grant, an enable): the poller tries again.
            lock (_gate) _waitingForKeys[disk.Name] = disk;
            DaemonLog.DiskFailed(logger, disk.Name, e.Message);
        }
        catch (Exception e) when (e is BlockDeviceException or DiskFormatException or IOException or UnauthorizedAccessException)
        {
            DaemonLog.DiskFailed(logger, disk.Name, e.Message); // one bad disk must not take the others down
        }
        return false;
    }

    /// <summary>Opens the disks that were refused for a key reason, if their keys can now be used.</summary>
    public async Task RetryWaitingAsync()
    {
        List<DiskSettings> waiting;
        lock (_gate) waiting = _waitingForKeys.Values.ToList();
        if (waiting.Count == 0) return;
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            using var keys = OpenKeys();
            var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
            foreach (var disk in waiting)
                if (await TryOpenAsync(opener, disk).ConfigureAwait(false)) DaemonLog.DiskRecovered(logger, disk.Name);
        }
        catch (ConfigException e)
        {
            DaemonLog.DiskFailed(logger, "(key stores)", e.Message);
        }
        finally
        {
            _changes.Release();
        }
    }

    public async Task<OpenedDisk> CreateAsync(string name, long size, int sectorSize, string? encryptionSet, string description)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            if (registry.Find(name) is not null || settings.Disks.Any(d => d.Name == name))
                throw new AdminException($"a disk named '{name}' already exists");
            if (encryptionSet is not null && settings.EncryptionSets.All(s => s.Name != encryptionSet))
                throw new AdminException($"no encryption set named '{encryptionSet}'; declare it in disks.toml");
            if (!ConfigLoader.IsValidName(name))
                throw new AdminException("a disk name is 1-64 characters of letters, digits, '.', '_' or '-' (it is the NBD export name)");
            if (size <= 0 || size % 4096 != 0) throw new AdminException($"size {size} is not a positive multiple of 4096 bytes");
            if (sectorSize is not (512 or 4096)) throw new AdminException($"sector size must be 512 or 4096, not {sectorSize}");
            string path = Path.Combine(settings.StateDir, "disks", name + ".img");
            if (File.Exists(path)) throw new AdminException($"{path} already exists; remove it or choose another name");
            var disk = new DiskSettings(name, size, path, description, false, sectorSize, false, encryptionSet);

            using var keys = OpenKeys();
            var opened = await new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger).OpenOrCreateAsync(disk).ConfigureAwait(false);
            var changes = RuntimeChanges.Load(settings);
            changes.Disks.Add(new RuntimeChanges.RuntimeDisk(name, size, sectorSize, description, path));
            if (encryptionSet is not null) changes.EncryptionSets[name] = encryptionSet;
            changes.Save(settings);
            Serve(opened);
            return opened;
        }
        catch (Exception e) when (e is DiskFormatException or KeyStoreException or BlockDeviceException or ConfigException)
        {
            throw new AdminException(e.Message);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Moves a disk to another set (null: the platform key) while it stays attached.</summary>
    public async Task<OpenedDisk> MoveAsync(string name, string? encryptionSet)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            OpenedDisk disk;
            lock (_gate)
                disk = _disks.GetValueOrDefault(name) ?? throw new AdminException($"no disk named '{name}' is served", notFound: true);
            EncryptionSetSettings? set = null;
            if (encryptionSet is not null)
                set = settings.EncryptionSets.FirstOrDefault(s => s.Name == encryptionSet)
                      ?? throw new AdminException($"no encryption set named '{encryptionSet}'; declare it in disks.toml");
            if (disk.Settings.ReadOnly) throw new AdminException($"disk '{name}' is read-only; its header cannot be rewritten");

            using var keys = OpenKeys();
            var moved = await new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger).RewrapAsync(disk, set).ConfigureAwait(false);
            var changes = RuntimeChanges.Load(settings);
            changes.EncryptionSets[name] = encryptionSet ?? "";
            changes.Save(settings);
            lock (_gate) _disks[name] = moved;
            return moved;
        }
        catch (Exception e) when (e is DiskFormatException or KeyStoreException or BlockDeviceException or ConfigException)
        {
            throw new AdminException(e.Message);
        }
        finally
        {
            _changes.Release();
        }
    }

    private KeySession OpenKeys()
    {
        try
        {
            return KeySession.Open(settings);
        }
        catch (KeyStoreException e)
        {
            throw new ConfigException(e.Message);
        }
    }

    private void Serve(OpenedDisk disk)
    {
        lock (_gate) _disks[disk.Settings.Name] = disk;
        registry.Add(new NbdExport(disk.Settings.Name, disk.Settings.Description, disk.Device));
        DaemonLog.DiskOpened(logger, disk.Settings.Name, Units.FormatSize(disk.Device.Size), disk.Settings.Path);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var disk in Disks)
        {
            try { await disk.Device.FlushAsync().ConfigureAwait(false); }
            catch (BlockDeviceException e) { DaemonLog.DiskFailed(logger, disk.Settings.Name, $"flush at stop failed: {e.Message}"); }
            await disk.Device.DisposeAsync().ConfigureAwait(false);
        }
        lock (_gate) _disks.Clear();
    }
}
