using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Lifecycle;
using ManagedDisks.Nbd;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>A failed admin request; the message says what to do. <see cref="NotFound"/> maps to HTTP 404.</summary>
internal sealed class AdminException(string message, bool notFound = false) : Exception(message)
{
    public bool NotFound { get; } = notFound;
}

/// <summary>One DEK re-wrapped by a rotation: a disk or a snapshot, and the key versions before and after.</summary>
internal sealed record Rewrapped(string Kind, string Name, string From, string To);

/// <summary>A disk the daemon knows but does not serve now, and why.</summary>
internal sealed record UnservedDisk(DiskSettings Settings, UnservedReason Reason, string Message);

internal enum UnservedReason
{
    /// <summary>Its key cannot be used (never opened, or shut down at a grace deadline); retried every poll.</summary>
    WaitingForKey,
    /// <summary>Detached by the admin; attached again only on request.</summary>
    Detached,
}

/// <summary>
/// Owns the served disks: opens them at start, creates, moves, detaches and shuts them down at
/// run time (changes one at a time), and closes them at stop.
/// </summary>
internal sealed class DiskManager(DaemonSettings settings, DiskRegistry registry, NbdServer server, GraceTimers timers, ILogger<DiskManager> logger)
    : IAsyncDisposable
{
    private readonly SemaphoreSlim _changes = new(1, 1);
    private readonly Dictionary<string, OpenedDisk> _disks = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly Dictionary<string, UnservedDisk> _unserved = new(StringComparer.Ordinal);

    public IReadOnlyList<OpenedDisk> Disks
    {
        get { lock (_gate) return _disks.Values.OrderBy(d => d.Settings.Name, StringComparer.Ordinal).ToList(); }
    }

    public IReadOnlyList<UnservedDisk> Unserved
    {
        get { lock (_gate) return _unserved.Values.OrderBy(d => d.Settings.Name, StringComparer.Ordinal).ToList(); }
    }

    public int WaitingForKeys
    {
        get { lock (_gate) return _unserved.Values.Count(d => d.Reason == UnservedReason.WaitingForKey); }
    }

    public OpenedDisk? Find(string name)
    {
        lock (_gate) return _disks.GetValueOrDefault(name);
    }

    /// <summary>Raised when a disk that had been shut down for its key is served again.</summary>
    public event Action<OpenedDisk>? Reopened;

    /// <summary>Raised whenever a disk starts being served (at start, created, attached, reopened).</summary>
    public event Action<OpenedDisk>? Served;

    /// <summary>Opens every configured disk; one that fails is logged and skipped.</summary>
    public async Task<int> OpenAllAsync()
    {
        var changes = RuntimeChanges.Load(settings);
        var disks = changes.Apply(settings);
        using var keys = OpenKeys();
        DaemonLog.PlatformKeyReady(logger, keys.PlatformKeyVersion, settings.PlatformKeyFile);
        var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
        foreach (var disk in disks)
        {
            if (changes.Detached.Contains(disk.Name)) MarkUnserved(disk, UnservedReason.Detached, DetachedMessage(disk.Name));
            else await TryOpenAsync(opener, disk).ConfigureAwait(false);
        }
        return disks.Count;
    }

    private static string DetachedMessage(string name) =>
        $"disk '{name}' is detached; attach it with `managed-disks disk attach {name}`";

    private async Task<bool> TryOpenAsync(EncryptedDiskOpener opener, DiskSettings disk)
    {
        if (timers.For(disk.Name) is { Expired: true } timer)
        {
            // Shut down at its deadline: only a usable key brings it back, and nothing is unwrapped to find out.
            var access = await opener.CheckAccessAsync(disk).ConfigureAwait(false);
            if (!access.IsUsable)
            {
                MarkUnserved(disk, UnservedReason.WaitingForKey, ShutdownMessage(timer with { Reason = access.Reason }));
                return false;
            }
        }
        try
        {
            Serve(await opener.OpenOrCreateAsync(disk).ConfigureAwait(false));
            return true;
        }
        catch (KeyStoreException e)
        {
            // A key problem can be fixed from outside (a grant, an enable): the poller tries again.
            MarkUnserved(disk, UnservedReason.WaitingForKey, e.Message);
            DaemonLog.DiskFailed(logger, disk.Name, e.Message);
        }
        catch (Exception e) when (e is BlockDeviceException or DiskFormatException or IOException or UnauthorizedAccessException)
        {
            DaemonLog.DiskFailed(logger, disk.Name, e.Message); // one bad disk must not take the others down
        }
        return false;
    }

    /// <summary>What a client is told about a disk shut down at its grace deadline.</summary>
    public static string ShutdownMessage(GraceTimer timer) =>
        $"shut down at {timer.Deadline:u} because its key is not usable: {timer.Reason}";

    private void MarkUnserved(DiskSettings disk, UnservedReason reason, string message)
    {
        lock (_gate) _unserved[disk.Name] = new UnservedDisk(disk, reason, message);
        registry.Refuse(disk.Name, message);
    }

    /// <summary>Opens the disks that wait for their key, if their keys can now be used.</summary>
    public async Task RetryWaitingAsync()
    {
        List<UnservedDisk> waiting;
        lock (_gate) waiting = _unserved.Values.Where(d => d.Reason == UnservedReason.WaitingForKey).ToList();
        if (waiting.Count == 0) return;
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            using var keys = OpenKeys();
            var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
            foreach (var disk in waiting)
            {
                lock (_gate)
                    if (!_unserved.TryGetValue(disk.Settings.Name, out var still) || still.Reason != UnservedReason.WaitingForKey) continue;
                if (!await TryOpenAsync(opener, disk.Settings).ConfigureAwait(false)) continue;
                DaemonLog.DiskRecovered(logger, disk.Settings.Name);
                if (Find(disk.Settings.Name) is { } opened) Reopened?.Invoke(opened);
            }
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
            string path = NewDiskPath(name, encryptionSet);
            if (size <= 0 || size % 4096 != 0) throw new AdminException($"size {size} is not a positive multiple of 4096 bytes");
            if (sectorSize is not (512 or 4096)) throw new AdminException($"sector size must be 512 or 4096, not {sectorSize}");
            var disk = new DiskSettings(name, size, path, description, false, sectorSize, false, encryptionSet);

            using var keys = OpenKeys();
            var opened = await new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger).OpenOrCreateAsync(disk).ConfigureAwait(false);
            Remember(disk);
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

    /// <summary>Checks a new disk's name and set; returns where its backing file goes.</summary>
    private string NewDiskPath(string name, string? encryptionSet)
    {
        if (Known(name)) throw new AdminException($"a disk named '{name}' already exists");
        if (encryptionSet is not null && settings.EncryptionSets.All(s => s.Name != encryptionSet))
            throw new AdminException($"no encryption set named '{encryptionSet}'; declare it in disks.toml");
        if (!ConfigLoader.IsValidName(name))
            throw new AdminException("a disk name is 1-64 characters of letters, digits, '.', '_' or '-' (it is the NBD export name)");
        string path = Path.Combine(settings.StateDir, "disks", name + ".img");
        if (File.Exists(path)) throw new AdminException($"{path} already exists; remove it or choose another name");
        return path;
    }

    private bool Known(string name)
    {
        lock (_gate)
            return _disks.ContainsKey(name) || _unserved.ContainsKey(name) || settings.Disks.Any(d => d.Name == name)
                   || RuntimeChanges.Load(settings).Disks.Any(d => d.Name == name);
    }

    /// <summary>Records a disk made at run time so that it is served again after a restart.</summary>
    private void Remember(DiskSettings disk)
    {
        var changes = RuntimeChanges.Load(settings);
        changes.Disks.Add(new RuntimeChanges.RuntimeDisk(disk.Name, disk.Size, disk.SectorSize, disk.Description, disk.Path));
        if (disk.EncryptionSet is not null) changes.EncryptionSets[disk.Name] = disk.EncryptionSet;
        changes.Save(settings);
    }

    /// <summary>Moves a disk to another set (null: the platform key) while it stays attached.</summary>
    public async Task<OpenedDisk> MoveAsync(string name, string? encryptionSet)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            var disk = Find(name) ?? throw new AdminException($"no disk named '{name}' is served", notFound: true);
            EncryptionSetSettings? set = null;
            if (encryptionSet is not null)
                set = settings.EncryptionSets.FirstOrDefault(s => s.Name == encryptionSet)
                      ?? throw new AdminException($"no encryption set named '{encryptionSet}'; declare it in disks.toml");
            if (disk.Settings.ReadOnly) throw new AdminException($"disk '{name}' is read-only; its header cannot be rewritten");
            if (disk.Header.Reencryption is not null) throw new AdminException($"disk '{name}' is being re-keyed; move it once `managed-disks disk rekey {name}` has finished");

            using var keys = OpenKeys();
            var moved = await new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger).RewrapAsync(disk, set).ConfigureAwait(false);
            var changes = RuntimeChanges.Load(settings);
            changes.EncryptionSets[name] = encryptionSet ?? "";
            changes.Save(settings);
            Replace(moved);
            return moved;
        }
        catch (Exception e) when (e is DiskFormatException or KeyStoreException or BlockDeviceException or ConfigException or ObjectDisposedException)
        {
            throw new AdminException(e is ObjectDisposedException ? $"disk '{name}' was shut down while it was being moved" : e.Message);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Re-wraps the DEK of every served disk in a set whose slot is not the version the set should
    /// use now (its pinned one, or its key's newest): after a rotation, while clients keep going.
    /// Each header is rewritten crash-safely on its own, so a crash leaves every disk wrapped with
    /// the old or the new version; the next start finishes the job.
    /// </summary>
    public async Task<IReadOnlyList<Rewrapped>> RewrapSetAsync(string setName)
    {
        var set = settings.EncryptionSets.FirstOrDefault(s => s.Name == setName)
                  ?? throw new AdminException($"no encryption set named '{setName}'; declare it in disks.toml", notFound: true);
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            using var keys = OpenKeys();
            var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
            var done = new List<Rewrapped>();
            foreach (var disk in Disks.Where(d => d.Settings.EncryptionSet == set.Name && !d.Settings.ReadOnly))
            {
                if (opener.WrappedAsItShouldBe(disk, set)) continue;
                string from = disk.Header.KeySlots[0].KeyVersion;
                var moved = await opener.RewrapAsync(disk, set).ConfigureAwait(false);
                Replace(moved);
                done.Add(new Rewrapped("disk", disk.Settings.Name, from, moved.Header.KeySlots[0].KeyVersion));
            }
            foreach (var snapshot in RuntimeChanges.Load(settings).Snapshots.Where(x => x.EncryptionSet == set.Name))
                if (await opener.RewrapFileAsync(snapshot.Path, snapshot.Name, set).ConfigureAwait(false) is { } versions)
                    done.Add(new Rewrapped("snapshot", snapshot.Name, versions.From, versions.To));
            return done;
        }
        catch (Exception e) when (e is DiskFormatException or KeyStoreException or BlockDeviceException or ConfigException or ObjectDisposedException)
        {
            throw new AdminException($"re-wrapping set '{setName}' stopped: {e.Message}; what was done stays done, run it again once fixed");
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// A point-in-time copy of a served disk, consistent with every write acknowledged before it:
    /// client I/O is held still (after what runs has finished) while the file is reflinked or
    /// sparsely copied. It keeps the disk's DEK and set, and is re-wrapped with it on rotation.
    /// </summary>
    public async Task<RuntimeChanges.RuntimeSnapshot> SnapshotAsync(string diskName, string snapshotName)
    {
        if (!ConfigLoader.IsValidName(snapshotName))
            throw new AdminException("a snapshot name is 1-64 characters of letters, digits, '.', '_' or '-'");
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            var disk = Find(diskName) ?? throw new AdminException($"no disk named '{diskName}' is served", notFound: true);
            if (RuntimeChanges.Load(settings).Snapshots.Any(x => x.Name == snapshotName))
                throw new AdminException($"a snapshot named '{snapshotName}' already exists");
            string path = Path.Combine(settings.StateDir, "snapshots", snapshotName + ".img");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (File.Exists(path)) throw new AdminException($"{path} already exists; remove it or choose another name");
            bool reflink;
            await using (await disk.Gate.PauseAsync().ConfigureAwait(false))
            {
                await disk.Device.FlushAsync().ConfigureAwait(false);
                try { reflink = SparseCopy.Copy(disk.Settings.Path, path); }
                catch { File.Delete(path); throw; }
            }
            var snapshot = new RuntimeChanges.RuntimeSnapshot(snapshotName, diskName, disk.Settings.EncryptionSet, disk.Device.Size,
                disk.Header.SectorSize, path, DateTimeOffset.UtcNow, reflink);
            var changes = RuntimeChanges.Load(settings);
            changes.Snapshots.Add(snapshot);
            changes.Save(settings);
            DaemonLog.SnapshotTaken(logger, snapshotName, diskName, reflink ? "reflink" : "sparse copy");
            Keys.Audit.AuditLog.Open(settings.AuditLog).Append(new Keys.Audit.AuditRecord("managed-disks", "snapshot", "ok", Disk: diskName,
                Detail: $"snapshot {snapshotName} ({(reflink ? "reflink" : "sparse copy")}), same DEK and set {disk.Settings.EncryptionSet ?? "(platform key)"}"));
            return snapshot;
        }
        catch (Exception e) when (e is BlockDeviceException or ConfigException or IOException)
        {
            throw new AdminException($"snapshot of '{diskName}' failed: {e.Message}");
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Makes a new disk from a snapshot (same DEK, a new identity, the snapshot's set unless told) and serves it.</summary>
    public async Task<OpenedDisk> CreateFromSnapshotAsync(string name, string snapshotName, string? encryptionSet, string description)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            var snapshot = RuntimeChanges.Load(settings).Snapshots.FirstOrDefault(x => x.Name == snapshotName)
                           ?? throw new AdminException($"no snapshot named '{snapshotName}'", notFound: true);
            string? set = encryptionSet ?? snapshot.EncryptionSet;
            string path = NewDiskPath(name, set);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            string temporary = path + ".creating";
            File.Delete(temporary);
            SparseCopy.Copy(snapshot.Path, temporary);
            var disk = new DiskSettings(name, snapshot.Size, path, description, false, snapshot.SectorSize, false, set);
            using var keys = OpenKeys();
            var opener = new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger);
            try
            {
                await opener.MakeIndependentAsync(temporary, disk).ConfigureAwait(false);
            }
            catch
            {
                File.Delete(temporary);
                throw;
            }
            File.Move(temporary, path);
            var opened = await opener.OpenOrCreateAsync(disk).ConfigureAwait(false);
            Remember(disk);
            Serve(opened);
            Keys.Audit.AuditLog.Open(settings.AuditLog).Append(new Keys.Audit.AuditRecord("managed-disks", "disk.create-from-snapshot", "ok", Disk: name,
                Detail: $"from snapshot {snapshotName} of disk {snapshot.Disk}"));
            return opened;
        }
        catch (Exception e) when (e is DiskFormatException or KeyStoreException or BlockDeviceException or ConfigException or IOException)
        {
            throw new AdminException(e.Message);
        }
        finally
        {
            _changes.Release();
        }
    }

    public IReadOnlyList<RuntimeChanges.RuntimeSnapshot> Snapshots => RuntimeChanges.Load(settings).Snapshots;

    /// <summary>Puts a served disk's new state (a rewritten header) in place, unless it was shut down meanwhile.</summary>
    public void Replace(OpenedDisk disk)
    {
        lock (_gate)
            if (_disks.ContainsKey(disk.Settings.Name)) _disks[disk.Settings.Name] = disk;
    }

    /// <summary>
    /// Takes a disk out of service: new I/O fails with EIO and <paramref name="reason"/>, clients
    /// are disconnected (ESHUTDOWN for what they still send), new attaches are refused with the
    /// reason, and the DEK and round keys are wiped once the last request has finished.
    /// Deliberately not serialised with other changes: a hung key store must not delay it.
    /// </summary>
    public async Task<bool> ShutDownAsync(string name, UnservedReason why, string reason)
    {
        OpenedDisk? disk;
        lock (_gate)
        {
            if (!_disks.Remove(name, out disk)) return false;
            _unserved[name] = new UnservedDisk(disk.Settings, why, reason);
        }
        registry.Refuse(name, reason);
        await disk.Gate.CloseAsync(reason).ConfigureAwait(false);
        await server.DisconnectExportAsync(name).ConfigureAwait(false);
        await CloseAsync(disk).ConfigureAwait(false);
        DaemonLog.DiskShutDown(logger, name, reason);
        return true;
    }

    /// <summary>Stops serving a disk until <see cref="AttachAsync"/>; kept across restarts.</summary>
    public async Task DetachAsync(string name)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            bool served = Find(name) is not null;
            lock (_gate)
                if (!served && !_unserved.ContainsKey(name)) throw new AdminException($"no disk named '{name}'", notFound: true);
            var changes = RuntimeChanges.Load(settings);
            if (!changes.Detached.Contains(name)) changes.Detached.Add(name);
            changes.Save(settings);
            if (served) await ShutDownAsync(name, UnservedReason.Detached, DetachedMessage(name)).ConfigureAwait(false);
            else
                lock (_gate) _unserved[name] = _unserved[name] with { Reason = UnservedReason.Detached, Message = DetachedMessage(name) };
            registry.Refuse(name, DetachedMessage(name));
            DaemonLog.DiskDetached(logger, name);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Serves a detached disk again (its key must be usable).</summary>
    public async Task<OpenedDisk> AttachAsync(string name)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            if (Find(name) is { } served) return served;
            UnservedDisk? unserved;
            lock (_gate) _unserved.TryGetValue(name, out unserved);
            if (unserved is null) throw new AdminException($"no disk named '{name}'", notFound: true);
            var changes = RuntimeChanges.Load(settings);
            changes.Detached.Remove(name);
            changes.Save(settings);
            lock (_gate) _unserved[name] = unserved with { Reason = UnservedReason.WaitingForKey };
            using var keys = OpenKeys();
            if (!await TryOpenAsync(new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger), unserved.Settings).ConfigureAwait(false))
                throw new AdminException(Unserved.FirstOrDefault(d => d.Settings.Name == name)?.Message ?? $"disk '{name}' could not be opened; see the daemon's log");
            return Find(name)!;
        }
        catch (ConfigException e)
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

    /// <summary>Runs <paramref name="work"/> with the key stores open, serialised with every other change.</summary>
    public async Task<T> WithKeysAsync<T>(Func<EncryptedDiskOpener, Task<T>> work)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            using var keys = OpenKeys();
            return await work(new EncryptedDiskOpener(keys.Agent, settings.EncryptionSets, logger)).ConfigureAwait(false);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Runs <paramref name="work"/> serialised with every other change (one re-key step, say), without opening the key stores.</summary>
    public async Task RunSerializedAsync(Func<Task> work)
    {
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            await work().ConfigureAwait(false);
        }
        finally
        {
            _changes.Release();
        }
    }

    private void Serve(OpenedDisk disk)
    {
        lock (_gate)
        {
            _disks[disk.Settings.Name] = disk;
            _unserved.Remove(disk.Settings.Name);
        }
        registry.Add(new NbdExport(disk.Settings.Name, disk.Settings.Description, disk.Gate));
        DaemonLog.DiskOpened(logger, disk.Settings.Name, Units.FormatSize(disk.Device.Size), disk.Settings.Path);
        Served?.Invoke(disk);
    }

    private async Task CloseAsync(OpenedDisk disk)
    {
        await disk.Gate.CloseAsync("the disk is closed").ConfigureAwait(false);
        try { await disk.Device.FlushAsync().ConfigureAwait(false); } // below the gate: what clients wrote before is kept
        catch (BlockDeviceException e) { DaemonLog.DiskFailed(logger, disk.Settings.Name, $"flush at close failed: {e.Message}"); }
        await disk.Gate.DisposeAsync().ConfigureAwait(false); // the encrypted disk below wipes its keys
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var disk in Disks) await CloseAsync(disk).ConfigureAwait(false);
        lock (_gate) _disks.Clear();
    }
}
