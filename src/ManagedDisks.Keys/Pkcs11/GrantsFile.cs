using System.Text.Json;
using System.Text.Json.Serialization;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// A PKCS#11 store's access policy. An HSM knows one user (whoever has the PIN), not the
/// daemon's identities, so which encryption set may use which key is kept beside the daemon's
/// state, as the software vault keeps it in vault.json:
/// <code>{ "keys": { "kek1": { "encryption-set:des1": ["wrapKey", "unwrapKey"] } } }</code>
/// Every change is a read-modify-write under an flock'd lock file in the same folder, written
/// atomically (<see cref="AtomicFile"/>).
/// </summary>
internal sealed class GrantsFile(string path, string storeName, TimeSpan lockTimeout)
{
    private sealed class Document
    {
        [JsonPropertyName("keys")] public SortedDictionary<string, SortedDictionary<string, List<string>>> Keys { get; set; } = new(StringComparer.Ordinal);
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string Path { get; } = System.IO.Path.GetFullPath(path);

    /// <summary>The grants on <paramref name="keyName"/>, by identity; empty if there are none (or no file yet).</summary>
    public IReadOnlyDictionary<string, KeyOperations> For(string keyName) =>
        Load().Keys.TryGetValue(keyName, out var grants)
            ? grants.ToDictionary(g => g.Key, g => KeyOperationNames.Parse(g.Value), StringComparer.Ordinal)
            : new Dictionary<string, KeyOperations>(StringComparer.Ordinal);

    /// <summary>Changes the grants of one key under the lock; <paramref name="change"/> may throw to change nothing.</summary>
    public IReadOnlyDictionary<string, KeyOperations> Change(string keyName, Action<SortedDictionary<string, List<string>>> change)
    {
        string folder = System.IO.Path.GetDirectoryName(Path)!;
        try { Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{storeName}': cannot create the folder of its grants file {Path}: {e.Message}; run as the user that owns the state folder", e);
        }
        using var _ = VaultLock.Acquire(folder, storeName, lockTimeout);
        var document = Load();
        if (!document.Keys.TryGetValue(keyName, out var grants))
            grants = document.Keys[keyName] = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        change(grants);
        if (grants.Count == 0) document.Keys.Remove(keyName);
        AtomicFile.Write(Path, JsonSerializer.SerializeToUtf8Bytes(document, Json));
        return grants.ToDictionary(g => g.Key, g => KeyOperationNames.Parse(g.Value), StringComparer.Ordinal);
    }

    private Document Load()
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(Path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return new Document(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{storeName}': cannot read its grants file {Path}: {e.Message}", e);
        }
        try
        {
            var document = JsonSerializer.Deserialize<Document>(bytes, Json) ?? new Document();
            document.Keys = new SortedDictionary<string, SortedDictionary<string, List<string>>>(
                document.Keys.ToDictionary(k => k.Key, k => new SortedDictionary<string, List<string>>(k.Value, StringComparer.Ordinal)), StringComparer.Ordinal);
            return document;
        }
        catch (JsonException e)
        {
            throw new KeyStoreException($"key store '{storeName}': its grants file {Path} is not valid JSON ({e.Message}); restore it from a backup or fix it by hand", e);
        }
    }
}
