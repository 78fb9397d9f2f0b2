using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Encryption.Reencryption;

/// <summary>
/// Which DEK each sector is under while a disk is re-encrypted, the same rule a reader of the
/// header applies (docs/FORMAT.md): below the watermark the new DEK; in the recorded chunk the
/// old DEK where the stored sector still matches its recorded hash, else the new; above it the
/// old. Writes below the chunk's end use the new DEK (in the chunk a new ciphertext never
/// matches its hash, so it reads back under the new DEK after a crash too).
/// Immutable: the owner swaps in a new one while client I/O is paused.
/// </summary>
internal sealed class SectorRouting
{
    private readonly byte[] _chunkHashes;

    public SectorRouting(XtsSectorCipher oldCipher, XtsSectorCipher newCipher, long watermarkSector, byte[] chunkHashes)
    {
        Old = oldCipher;
        New = newCipher;
        WatermarkSector = watermarkSector;
        _chunkHashes = chunkHashes;
        ChunkEndSector = watermarkSector + chunkHashes.Length / ReencryptionState.HashLength;
    }

    public XtsSectorCipher Old { get; }
    public XtsSectorCipher New { get; }
    public long WatermarkSector { get; }
    public long ChunkEndSector { get; }

    /// <summary>Encrypts whole sectors starting at <paramref name="firstSector"/>, each with the DEK it belongs under.</summary>
    public void Encrypt(Span<byte> data, long firstSector, int sectorSize)
    {
        int sectors = data.Length / sectorSize;
        int newSectors = (int)Math.Clamp(ChunkEndSector - firstSector, 0, sectors);
        if (newSectors > 0) New.Encrypt(data[..(newSectors * sectorSize)], data[..(newSectors * sectorSize)], (ulong)firstSector, sectorSize);
        if (newSectors < sectors)
        {
            var rest = data[(newSectors * sectorSize)..];
            Old.Encrypt(rest, rest, (ulong)(firstSector + newSectors), sectorSize);
        }
    }

    /// <summary>Decrypts whole stored sectors (no holes among them) starting at <paramref name="firstSector"/>.</summary>
    public void Decrypt(Span<byte> data, long firstSector, int sectorSize)
    {
        int sectors = data.Length / sectorSize;
        int i = 0;
        while (i < sectors)
        {
            long sector = firstSector + i;
            int run;
            XtsSectorCipher cipher;
            if (sector < WatermarkSector)
            {
                run = (int)Math.Min(sectors - i, WatermarkSector - sector);
                cipher = New;
            }
            else if (sector >= ChunkEndSector)
            {
                run = sectors - i;
                cipher = Old;
            }
            else
            {
                run = 1;
                var stored = data.Slice(i * sectorSize, sectorSize);
                var recorded = _chunkHashes.AsSpan((int)(sector - WatermarkSector) * ReencryptionState.HashLength, ReencryptionState.HashLength);
                cipher = SectorHashes.Matches(stored, recorded) ? Old : New;
            }
            var span = data.Slice(i * sectorSize, run * sectorSize);
            cipher.Decrypt(span, span, (ulong)sector, sectorSize);
            i += run;
        }
    }
}
