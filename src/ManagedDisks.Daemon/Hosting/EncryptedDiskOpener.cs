using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Creates and opens encrypted disks: header, key slot, digest check, header repair, and the
/// encrypting filter over the sparse backing file.
/// </summary>
internal sealed class EncryptedDiskOpener(PlatformKeyStore platformKey, ILogger logger)
{
    public async Task<EncryptedDisk> OpenOrCreateAsync(DiskSettings disk)
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
            var slot = header.KeySlots.FirstOrDefault(platformKey.CanUnwrap)
                       ?? throw new DiskFormatException($"disk {disk.Name} ({disk.Path}) has no key slot for the platform key; its keys: {string.Join(", ", header.KeySlots.Select(s => $"{s.KeyStore}/{s.KeyName}"))}");

            XtsSectorCipher cipher;
            using (var dek = platformKey.Unwrap(slot, disk.Name))
            {
                if (!KeyDigests.Matches(dek, header.Digest))
                    throw new DiskFormatException($"the key unwrapped for {disk.Path} does not match the disk's digest: it is the wrong key for this disk; restore the key store that belongs to it");
                cipher = new XtsSectorCipher(dek);
            }

            if (opened.NeedsRepair && !disk.ReadOnly)
            {
                await DiskContainer.WriteAsync(file, header, opened.Sequence + 1).ConfigureAwait(false);
                for (int copy = 0; copy < 2; copy++)
                    if (opened.CopyProblems[copy] is { } problem) DaemonLog.HeaderRepaired(logger, disk.Name, copy, disk.Path, problem);
            }
            if (header.LogicalSize != disk.Size) DaemonLog.SizeMismatch(logger, disk.Name, disk.Size, disk.Path, header.LogicalSize);
            return new EncryptedDisk(file, cipher, header.PayloadOffset, header.LogicalSize, header.SectorSize, disk.DetectZeroes);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Writes the new disk under a temporary name and renames it, so a crash never leaves a headerless disk.</summary>
    private async Task CreateAsync(DiskSettings disk)
    {
        string temporary = disk.Path + ".creating";
        File.Delete(temporary);
        long payloadOffset = HeaderCodec.DefaultPayloadOffset;
        SparseFile.CreateIfMissing(temporary, payloadOffset + disk.Size);
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
                KeySlots = [platformKey.Wrap(dek)],
                Created = DateTimeOffset.UtcNow,
            };
            await DiskContainer.WriteAsync(file, header, sequence: 1).ConfigureAwait(false);
        }
        File.Move(temporary, disk.Path);
    }
}
