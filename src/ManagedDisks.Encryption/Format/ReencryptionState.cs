using System.Text.Json.Serialization;

namespace ManagedDisks.Encryption.Format;

/// <summary>
/// A re-encryption in progress (docs/FORMAT.md, "Re-encryption"): the new DEK's digest and key
/// slots, the watermark below which every sector is under the new DEK, and the in-progress
/// chunk. Sectors <c>[watermark, watermark + n)</c>, n = <see cref="ChunkHashes"/> / 16, were
/// recorded before they were converted: a stored sector there whose truncated SHA-256 still
/// equals its recorded hash holds the old ciphertext; any other non-hole sector is under the
/// new DEK. Everything from the end of that chunk up is under the old DEK.
/// </summary>
public sealed record ReencryptionState
{
    /// <summary>Bytes of each recorded hash: SHA-256 truncated to 128 bits.</summary>
    public const int HashLength = 16;

    [JsonPropertyName("digest")] public required KeyDigest Digest { get; init; }
    [JsonPropertyName("key_slots")] public required IReadOnlyList<KeySlot> KeySlots { get; init; }
    [JsonPropertyName("watermark")] public required long Watermark { get; init; }
    [JsonPropertyName("chunk_size")] public required int ChunkSize { get; init; }
    [JsonPropertyName("chunk_hashes")] public byte[] ChunkHashes { get; init; } = [];
    [JsonPropertyName("started")] public required DateTimeOffset Started { get; init; }

    /// <summary>Sectors in the recorded in-progress chunk.</summary>
    public int ChunkSectors => ChunkHashes.Length / HashLength;
}
