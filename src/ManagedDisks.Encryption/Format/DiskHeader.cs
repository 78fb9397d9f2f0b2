using System.Text.Json.Serialization;

namespace ManagedDisks.Encryption.Format;

/// <summary>The metadata of an encrypted disk, stored as JSON in each header copy (docs/FORMAT.md).</summary>
public sealed record DiskHeader
{
    public const string Cipher = "aes-xts-plain64";

    [JsonPropertyName("uuid")] public required Guid Uuid { get; init; }
    [JsonPropertyName("logical_size")] public required long LogicalSize { get; init; }
    [JsonPropertyName("sector_size")] public required int SectorSize { get; init; }
    [JsonPropertyName("payload_offset")] public required long PayloadOffset { get; init; }
    [JsonPropertyName("cipher")] public string CipherName { get; init; } = Cipher;
    [JsonPropertyName("key_bits")] public int KeyBits { get; init; } = 512;
    [JsonPropertyName("digest")] public required KeyDigest Digest { get; init; }
    [JsonPropertyName("key_slots")] public required IReadOnlyList<KeySlot> KeySlots { get; init; }
    [JsonPropertyName("created")] public required DateTimeOffset Created { get; init; }

    /// <summary>Present only while the data is being moved to a new DEK; absent, the JSON is as before.</summary>
    [JsonPropertyName("reencryption")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ReencryptionState? Reencryption { get; init; }
}

/// <summary>One wrapping of the DEK by a key-encryption key. The wrapped DEK is not secret.</summary>
public sealed record KeySlot
{
    [JsonPropertyName("key_store")] public required string KeyStore { get; init; }
    [JsonPropertyName("key_name")] public required string KeyName { get; init; }
    [JsonPropertyName("key_version")] public required string KeyVersion { get; init; }
    [JsonPropertyName("wrap_algorithm")] public required string WrapAlgorithm { get; init; }
    [JsonPropertyName("wrapped_dek")] public required byte[] WrappedDek { get; init; }
    [JsonPropertyName("created")] public required DateTimeOffset Created { get; init; }
}

/// <summary>Checks a candidate DEK without revealing it, as LUKS2's pbkdf2 digest does.</summary>
public sealed record KeyDigest
{
    [JsonPropertyName("type")] public string Type { get; init; } = "pbkdf2";
    [JsonPropertyName("hash")] public string Hash { get; init; } = "sha256";
    [JsonPropertyName("iterations")] public required int Iterations { get; init; }
    [JsonPropertyName("salt")] public required byte[] Salt { get; init; }
    [JsonPropertyName("digest")] public required byte[] Value { get; init; }
}
