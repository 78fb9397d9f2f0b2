using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Agent;
using ManagedDisks.Keys.Lifecycle;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Creates and opens encrypted disks: header, key slot, digest check, header repair, and the
/// encrypting filter over the sparse backing file.
/// </summary>
internal sealed partial class EncryptedDiskOpener(KeyAgent agent, IReadOnlyList<EncryptionSetSettings> sets, ILogger logger)
{
    public async Task<OpenedDisk> OpenOrCreateAsync(DiskSettings disk)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(disk.Path)!);
        if (!File.Exists(disk.Path))
        {
            await CreateAsync(disk).ConfigureAwait(false);
            DaemonLog.DiskCreated(logger, disk.Name, Units.FormatSize(disk.Size), disk.Path);
        }

        var file = SparseFile.Open(disk.Path, disk.ReadOnly);
        try
        {
            var opened = await DiskContainer.ReadAsync(file, disk.Path).ConfigureAwait(false);
            var header = opened.Header;
            var set = SetOf(disk);
            var slot = header.KeySlots.FirstOrDefault(s => Targets(s, set));
            // A set that does not pin a version follows its key's newest: a rotation the daemon did
            // not finish (or made while it was down) completes here.
            // (A key that cannot be read now is left to the unwrap below, which says what is wrong.)
            string? newest = set is { KeyVersion: null } ? agent.TryLatestVersion(set.KeyStore, set.Key) : null;
            bool moving = slot is null || (newest is not null && slot.KeyVersion != newest);
            XtsSectorCipher cipher;
            var (usedSlot, unwrapped) = UnwrapChecked(header, disk.Name, disk.Path, slot);
            slot = usedSlot;
            using (var dek = unwrapped)
            {
                cipher = new XtsSectorCipher(dek);
                if (moving && !disk.ReadOnly)
                {
                    // The disk changes key: re-wrap its DEK and rewrite the header; the data stays as it is.
                    var newSlot = WrapFor(disk, set, dek);
                    header = header with { KeySlots = [newSlot] };
                    await DiskContainer.WriteAsync(file, header, opened.Sequence + 1).ConfigureAwait(false);
                    opened = opened with { Header = header, Sequence = opened.Sequence + 1, CopyProblems = [null, null] };
                    DaemonLog.DiskRewrapped(logger, disk.Name, $"{slot.KeyStore}/{slot.KeyName}", $"{newSlot.KeyStore}/{newSlot.KeyName}/{newSlot.KeyVersion}");
                }
            }

            if (opened.NeedsRepair && !disk.ReadOnly)
            {
                await DiskContainer.WriteAsync(file, header, opened.Sequence + 1).ConfigureAwait(false);
                for (int copy = 0; copy < 2; copy++)
                    if (opened.CopyProblems[copy] is { } problem) DaemonLog.HeaderRepaired(logger, disk.Name, copy, disk.Path, problem);
                opened = opened with { Sequence = opened.Sequence + 1 };
            }
            if (header.LogicalSize != disk.Size) DaemonLog.SizeMismatch(logger, disk.Name, disk.Size, disk.Path, header.LogicalSize);
            var device = new EncryptedDisk(file, cipher, header.PayloadOffset, header.LogicalSize, header.SectorSize, disk.DetectZeroes);
            if (header.Reencryption is not null) AttachReencryption(disk, header, device);
            return new OpenedDisk(disk, file, device, new GatedDevice(device), header, opened.Sequence);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Unwraps a header's DEK with <paramref name="preferred"/>, or else the first slot whose key a
    /// configured set (or the platform) uses, and checks it against the header's digest.
    /// </summary>
    private (KeySlot Slot, DataEncryptionKey Dek) UnwrapChecked(DiskHeader header, string disk, string path, KeySlot? preferred = null)
    {
        var slot = preferred ?? header.KeySlots.FirstOrDefault(s => IdentityFor(s) is not null)
                   ?? throw new DiskFormatException($"disk {disk} ({path}) is wrapped only by keys no configured encryption set uses ({string.Join(", ", header.KeySlots.Select(s => $"{s.KeyStore}/{s.KeyName}"))}); add an [[encryption_set]] for one of them");
        var dek = agent.Unwrap(IdentityFor(slot)!, slot, disk);
        if (KeyDigests.Matches(dek, header.Digest)) return (slot, dek);
        dek.Dispose();
        throw new DiskFormatException($"the key unwrapped for {path} does not match the disk's digest: it is the wrong key for this disk; restore the key store that belongs to it");
    }

    /// <summary>Whether a served disk's DEK is wrapped with the version its set should use now.</summary>
    public bool WrappedAsItShouldBe(OpenedDisk disk, EncryptionSetSettings set)
    {
        var slot = disk.Header.KeySlots[0];
        return Targets(slot, set) && slot.KeyVersion == (set.KeyVersion ?? agent.LatestVersion(set.KeyStore, set.Key));
    }

    /// <summary>
    /// Re-wraps the DEK of a disk image that is not served (a snapshot) for its set's current
    /// version; returns the versions before and after, or null if it already is.
    /// </summary>
    public async Task<(string From, string To)?> RewrapFileAsync(string path, string name, EncryptionSetSettings set)
    {
        await using var file = SparseFile.Open(path);
        var opened = await DiskContainer.ReadAsync(file, path).ConfigureAwait(false);
        string target = set.KeyVersion ?? agent.LatestVersion(set.KeyStore, set.Key);
        if (opened.Header.KeySlots.Any(s => Targets(s, set) && s.KeyVersion == target)) return null;
        var (slot, unwrapped) = UnwrapChecked(opened.Header, name, path);
        using var dek = unwrapped;
        var newSlot = agent.Wrap(set.Identity, set.KeyStore, set.Key, set.KeyVersion, dek, name);
        await DiskContainer.WriteAsync(file, opened.Header with { KeySlots = [newSlot] }, opened.Sequence + 1).ConfigureAwait(false);
        DaemonLog.DiskRewrapped(logger, name, $"{slot.KeyStore}/{slot.KeyName}/{slot.KeyVersion}", $"{newSlot.KeyStore}/{newSlot.KeyName}/{newSlot.KeyVersion}");
        return (slot.KeyVersion, newSlot.KeyVersion);
    }

    /// <summary>
    /// Turns a copy of a snapshot into a disk of its own: a new UUID, and its DEK wrapped for the
    /// new disk's set. The data stays encrypted under the snapshot's DEK, as a cloned cloud disk's does.
    /// </summary>
    public async Task MakeIndependentAsync(string path, DiskSettings disk)
    {
        await using var file = SparseFile.Open(path);
        var opened = await DiskContainer.ReadAsync(file, path).ConfigureAwait(false);
        using var dek = UnwrapChecked(opened.Header, disk.Name, path).Dek;
        var header = opened.Header with { Uuid = Guid.NewGuid(), KeySlots = [WrapFor(disk, SetOf(disk), dek)], Created = DateTimeOffset.UtcNow };
        await DiskContainer.WriteAsync(file, header, opened.Sequence + 1).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves a served disk to another encryption set (or back to the platform key): the DEK is
    /// unwrapped with the current slot, wrapped for the new key, and the header rewritten
    /// crash-safely beside the payload, while clients keep doing I/O.
    /// </summary>
    public async Task<OpenedDisk> RewrapAsync(OpenedDisk disk, EncryptionSetSettings? newSet)
    {
        var settings = disk.Settings with { EncryptionSet = newSet?.Name };
        var (slot, unwrapped) = UnwrapChecked(disk.Header, settings.Name, settings.Path);
        using var dek = unwrapped;
        var newSlot = WrapFor(settings, newSet, dek);
        var header = disk.Header with { KeySlots = [newSlot] };
        await DiskContainer.WriteAsync(disk.File, header, disk.Sequence + 1).ConfigureAwait(false);
        DaemonLog.DiskRewrapped(logger, settings.Name, $"{slot.KeyStore}/{slot.KeyName}", $"{newSlot.KeyStore}/{newSlot.KeyName}/{newSlot.KeyVersion}");
        return disk with { Settings = settings, Header = header, Sequence = disk.Sequence + 1 };
    }

    /// <summary>Whether the key of a served disk's slot can be used now (no unwrap, no audit record).</summary>
    public KeyAccess CheckAccess(OpenedDisk disk)
    {
        var slot = disk.Header.KeySlots[0];
        return agent.CheckUnwrap(IdentityFor(slot), slot, disk.Settings.Name);
    }

    /// <summary>Whether any key slot of a disk that is not open could be unwrapped now.</summary>
    public async Task<KeyAccess> CheckAccessAsync(DiskSettings disk)
    {
        await using var file = SparseFile.OpenForInspection(disk.Path);
        var header = (await DiskContainer.ReadAsync(file, disk.Path).ConfigureAwait(false)).Header;
        KeyAccess? first = null;
        foreach (var slot in header.KeySlots)
        {
            var access = agent.CheckUnwrap(IdentityFor(slot), slot, disk.Name);
            if (access.IsUsable) return access;
            first ??= access;
        }
        return first ?? new KeyAccess(KeyUsability.Revoked, $"disk {disk.Name} has no key slot");
    }

    private EncryptionSetSettings? SetOf(DiskSettings disk) =>
        disk.EncryptionSet is null ? null : sets.First(s => s.Name == disk.EncryptionSet);

    /// <summary>Whether a slot is the one the disk's configuration asks for.</summary>
    private static bool Targets(KeySlot slot, EncryptionSetSettings? set) => set is null
        ? slot.KeyStore == PlatformKeyStore.StoreName
        : slot.KeyStore == set.KeyStore && slot.KeyName == set.Key && (set.KeyVersion is null || slot.KeyVersion == set.KeyVersion);

    /// <summary>The identity that may unwrap a slot: the platform's, or that of a set using its key.</summary>
    private string? IdentityFor(KeySlot slot) => slot.KeyStore == PlatformKeyStore.StoreName
        ? KeyAgent.PlatformIdentity
        : sets.FirstOrDefault(s => s.KeyStore == slot.KeyStore && s.Key == slot.KeyName)?.Identity;

    private KeySlot WrapFor(DiskSettings disk, EncryptionSetSettings? set, DataEncryptionKey dek) => set is null
        ? agent.WrapWithPlatformKey(dek, disk.Name)
        : agent.Wrap(set.Identity, set.KeyStore, set.Key, set.KeyVersion, dek, disk.Name);

    /// <summary>Writes the new disk under a temporary name and renames it, so a crash never leaves a headerless disk.</summary>
    private async Task CreateAsync(DiskSettings disk)
    {
        string temporary = disk.Path + ".creating";
        File.Delete(temporary);
        long payloadOffset = HeaderCodec.DefaultPayloadOffset;
        SparseFile.CreateIfMissing(temporary, payloadOffset + disk.Size);
        try
        {
            await using (var file = SparseFile.Open(temporary))
            {
                using var dek = DataEncryptionKey.Generate();
                var header = new DiskHeader
                {
                    Uuid = Guid.NewGuid(),
                    LogicalSize = disk.Size,
                    SectorSize = disk.SectorSize,
                    PayloadOffset = payloadOffset,
                    Digest = KeyDigests.Create(dek),
                    KeySlots = [WrapFor(disk, SetOf(disk), dek)],
                    Created = DateTimeOffset.UtcNow,
                };
                await DiskContainer.WriteAsync(file, header, sequence: 1).ConfigureAwait(false);
            }
        }
        catch
        {
            File.Delete(temporary); // e.g. the key refused to wrap: leave nothing behind
            throw;
        }
        File.Move(temporary, disk.Path);
    }
}
