using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ManagedDisks.Encryption.Format;

/// <summary>
/// Encodes one header copy: a 4096-byte binary block (magic, version, copy index, JSON length,
/// sequence number, SHA-256 checksum) followed by the JSON metadata. Layout in docs/FORMAT.md.
/// </summary>
public static class HeaderCodec
{
    public static ReadOnlySpan<byte> Magic => "MDISKHDR"u8;
    public const ushort Version = 1;
    public const int BinaryLength = 4096;
    /// <summary>Each copy owns 256 KiB: copy 0 at 0, copy 1 at 256 KiB.</summary>
    public const int CopyArea = 256 * 1024;
    public const int MaxJsonLength = CopyArea - BinaryLength;
    /// <summary>Payload starts at 1 MiB: header copies plus room to grow, and 1 MiB alignment.</summary>
    public const long DefaultPayloadOffset = 1 << 20;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static long CopyOffset(int copy) => (long)copy * CopyArea;

    /// <summary>The bytes of copy <paramref name="copy"/>, padded to a multiple of 4096.</summary>
    public static byte[] Encode(DiskHeader header, int copy, ulong sequence)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header, Json);
        if (json.Length > MaxJsonLength) throw new DiskFormatException($"header metadata of {json.Length} bytes exceeds the {MaxJsonLength}-byte area");
        var bytes = new byte[(BinaryLength + json.Length + 4095) / 4096 * 4096];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(10), (ushort)copy);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), (uint)json.Length);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), sequence);
        json.CopyTo(bytes, BinaryLength);
        SHA256.HashData(bytes.AsSpan(0, BinaryLength + json.Length), bytes.AsSpan(24, 32));
        return bytes;
    }

    /// <summary>Decodes a copy read from the start of its area; null with a reason when it is not valid.</summary>
    public static (DiskHeader Header, ulong Sequence)? TryDecode(ReadOnlySpan<byte> area, int copy, out string? problem)
    {
        problem = null;
        if (area.Length < BinaryLength) { problem = "shorter than a header"; return null; }
        if (!area[..8].SequenceEqual(Magic))
        {
            problem = area[..BinaryLength].IndexOfAnyExcept((byte)0) < 0 ? "empty (all zeros)" : "no ManagedDisks header magic";
            return null;
        }
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(area[8..]);
        if (version != Version) { problem = $"format version {version}, this build reads version {Version}"; return null; }
        if (BinaryPrimitives.ReadUInt16BigEndian(area[10..]) != copy) { problem = "copy index does not match its position"; return null; }
        uint jsonLength = BinaryPrimitives.ReadUInt32BigEndian(area[12..]);
        if (jsonLength > MaxJsonLength || BinaryLength + jsonLength > area.Length) { problem = "metadata length out of range"; return null; }
        ulong sequence = BinaryPrimitives.ReadUInt64BigEndian(area[16..]);

        var copyBytes = area[..(BinaryLength + (int)jsonLength)].ToArray();
        Span<byte> stored = stackalloc byte[32];
        copyBytes.AsSpan(24, 32).CopyTo(stored);
        copyBytes.AsSpan(24, 32).Clear();
        Span<byte> actual = stackalloc byte[32];
        SHA256.HashData(copyBytes, actual);
        if (!actual.SequenceEqual(stored)) { problem = "checksum mismatch (torn or corrupted write)"; return null; }

        try
        {
            var header = JsonSerializer.Deserialize<DiskHeader>(copyBytes.AsSpan(BinaryLength), Json);
            if (header is null) { problem = "empty metadata"; return null; }
            if (Validate(header) is { } invalid) { problem = invalid; return null; }
            return (header, sequence);
        }
        catch (JsonException e)
        {
            problem = $"metadata is not valid: {e.Message}";
            return null;
        }
    }

    private static string? Validate(DiskHeader h)
    {
        if (h.CipherName != DiskHeader.Cipher || h.KeyBits != 512) return $"unsupported cipher {h.CipherName}/{h.KeyBits}";
        if (h.SectorSize is not (512 or 4096)) return $"unsupported sector size {h.SectorSize}";
        if (h.PayloadOffset < 2 * CopyArea || h.PayloadOffset % (1 << 20) != 0) return $"payload offset {h.PayloadOffset} is not a multiple of 1 MiB after the headers";
        if (h.LogicalSize <= 0 || h.LogicalSize % h.SectorSize != 0) return $"logical size {h.LogicalSize} is not a positive multiple of the sector size";
        if (h.KeySlots.Count == 0) return "no key slot";
        if (h.Reencryption is { } r)
        {
            if (r.KeySlots.Count == 0) return "re-encryption without a key slot for the new key";
            if (r.ChunkSize <= 0 || r.ChunkSize % h.SectorSize != 0) return $"re-encryption chunk size {r.ChunkSize} is not a positive multiple of the sector size";
            if (r.ChunkHashes.Length % ReencryptionState.HashLength != 0) return "re-encryption chunk hashes are not whole 16-byte hashes";
            long chunkEnd = r.Watermark + (long)r.ChunkSectors * h.SectorSize;
            if (r.Watermark < 0 || r.Watermark % h.SectorSize != 0 || chunkEnd > h.LogicalSize)
                return $"re-encryption watermark {r.Watermark} (+{r.ChunkSectors} sectors in progress) is not a sector boundary inside the disk";
        }
        return null;
    }
}
