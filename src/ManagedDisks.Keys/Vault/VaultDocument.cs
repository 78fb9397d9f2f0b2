using System.Text.Json;
using System.Text.Json.Serialization;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// <c>vault.json</c>: everything about the vault except private keys. Public keys are here, so
/// wrapping needs no master key. Rewritten whole (atomically) on every change, under the lock.
/// </summary>
internal sealed class VaultDocument
{
    public const string FileName = "vault.json";
    public const int CurrentFormat = 1;

    public int Format { get; set; } = CurrentFormat;
    public string VaultId { get; set; } = "";
    public DateTimeOffset Created { get; set; }
    public string MasterKeyCheck { get; set; } = "";
    /// <summary>While on, a deleted key cannot be purged before its retention period ends (Key Vault's purge protection).</summary>
    public bool PurgeProtection { get; set; } = true;
    public int RetentionDays { get; set; } = 90;
    public List<StoredKey> Keys { get; set; } = [];

    public StoredKey? Find(string name) => Keys.Find(k => k.Name == name);

    public static VaultDocument Load(string path, string storeName)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{storeName}': cannot read {path}: {e.Message}; run as the user that owns the vault", e);
        }
        VaultDocument? document;
        try { document = JsonSerializer.Deserialize(bytes, VaultJsonContext.Files.VaultDocument); }
        catch (JsonException e)
        {
            throw new KeyStoreException($"key store '{storeName}': {path} is damaged ({e.Message}); restore it from a backup of the vault folder", e);
        }
        if (document is null || document.VaultId.Length == 0)
            throw new KeyStoreException($"key store '{storeName}': {path} is not a vault's metadata; restore it from a backup of the vault folder");
        if (document.Format > CurrentFormat)
            throw new KeyStoreException($"key store '{storeName}': {path} has format {document.Format}, written by a newer managed-disks; upgrade this one");
        return document;
    }

    public void Save(string path) => AtomicFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(this, VaultJsonContext.Files.VaultDocument));
}

internal sealed class StoredKey
{
    public string Name { get; set; } = "";
    public bool Enabled { get; set; } = true;
    public DateTimeOffset? NotBefore { get; set; }
    public DateTimeOffset? Expires { get; set; }
    public DateTimeOffset? DeletedOn { get; set; }
    public DateTimeOffset? PurgeAfter { get; set; }
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset Updated { get; set; }
    /// <summary>Oldest first; the last is the latest.</summary>
    public List<StoredVersion> Versions { get; set; } = [];
    /// <summary>Identity → operation names (get, wrapKey, unwrapKey).</summary>
    public SortedDictionary<string, List<string>> Grants { get; set; } = new(StringComparer.Ordinal);

    public StoredVersion? FindVersion(string version) => Versions.Find(v => v.Version == version);

    /// <summary>Deleted, then disabled, then the validity window: the first that applies wins.</summary>
    public KeyState StateAt(DateTimeOffset now) =>
        DeletedOn is not null ? KeyState.Deleted
        : !Enabled ? KeyState.Disabled
        : Expires is { } expires && expires < now ? KeyState.Expired
        : NotBefore is { } notBefore && notBefore > now ? KeyState.NotYetValid
        : KeyState.Enabled;

    public KeyInfo ToKeyInfo(DateTimeOffset now) => new(
        Name,
        Versions[^1].Bits,
        StateAt(now),
        Versions.Select(v => new KeyVersionInfo(v.Version, v.Created)).ToArray(),
        NotBefore,
        Expires,
        DeletedOn,
        PurgeAfter,
        Grants.ToDictionary(g => g.Key, g => KeyOperationNames.Parse(g.Value), StringComparer.Ordinal));
}

internal sealed class StoredVersion
{
    /// <summary>32 lowercase hex characters, random, as Key Vault names versions.</summary>
    public string Version { get; set; } = "";
    public DateTimeOffset Created { get; set; }
    public int Bits { get; set; }
    /// <summary>"generated" in the vault or "imported" from a PEM.</summary>
    public string Origin { get; set; } = "";
    /// <summary>SubjectPublicKeyInfo DER, base64.</summary>
    public string PublicKey { get; set; } = "";
}

[JsonSerializable(typeof(VaultDocument))]
internal sealed partial class VaultJsonContext : JsonSerializerContext
{
    /// <summary>snake_case, indented, and base64 '+' kept as it is (the default encoder writes \u002B).</summary>
    public static VaultJsonContext Files { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
