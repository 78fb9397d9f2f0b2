using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>The key work of a re-key: a fresh DEK wrapped for the disk's key, and both DEKs while one is in progress.</summary>
internal sealed partial class EncryptedDiskOpener
{
    /// <summary>
    /// Starts re-encrypting a served disk: generates a DEK, wraps it with the key the disk's
    /// configuration names (the newest version unless pinned), records both in the header and
    /// routes the disk's sectors by it. No data moves yet; the caller runs the steps.
    /// </summary>
    public async Task<OpenedDisk> BeginReencryptionAsync(OpenedDisk disk)
    {
        using var dek = DataEncryptionKey.Generate();
        var slot = WrapFor(disk.Settings, SetOf(disk.Settings), dek);
        var state = DiskReencryption.Plan(KeyDigests.Create(dek), [slot]);
        var header = disk.Header with { Reencryption = state };
        // Written before the routing changes: until then every sector is under the old DEK, as the header says.
        await DiskContainer.WriteAsync(disk.File, header, disk.Sequence + 1).ConfigureAwait(false);
        DiskReencryption.Attach(disk.Device, new XtsSectorCipher(dek), state);
        return disk with { Header = header, Sequence = disk.Sequence + 1 };
    }

    /// <summary>A disk opened mid re-key: unwraps the new DEK too, checks it, and routes sectors as the header says.</summary>
    private void AttachReencryption(DiskSettings disk, DiskHeader header, EncryptedDisk device)
    {
        var state = header.Reencryption!;
        var slot = state.KeySlots.FirstOrDefault(s => IdentityFor(s) is not null)
                   ?? throw new DiskFormatException($"disk {disk.Name} is being re-keyed, but its new DEK is wrapped only by keys no configured encryption set uses ({string.Join(", ", state.KeySlots.Select(s => $"{s.KeyStore}/{s.KeyName}"))}); add an [[encryption_set]] for one of them");
        using var dek = agent.Unwrap(IdentityFor(slot)!, slot, disk.Name);
        if (!KeyDigests.Matches(dek, state.Digest))
            throw new DiskFormatException($"the new key unwrapped for the re-key of {disk.Path} does not match its digest; restore the key store that belongs to it");
        DiskReencryption.Attach(device, new XtsSectorCipher(dek), state);
    }
}
