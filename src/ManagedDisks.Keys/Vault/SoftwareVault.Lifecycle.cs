namespace ManagedDisks.Keys.Vault;

/// <summary>A key's attributes and life: enable, disable, validity window, soft delete, recover, purge.</summary>
public sealed partial class SoftwareVault
{
    public KeyInfo DisableKey(string name) => ChangeKey(name, (key, _) => key.Enabled = false);

    public KeyInfo EnableKey(string name) => ChangeKey(name, (key, _) => key.Enabled = true);

    /// <summary>Sets or clears not-before and expires; <see cref="DateChange.Keep"/> leaves one as it is.</summary>
    public KeyInfo SetValidity(string name, DateChange notBefore, DateChange expires) => ChangeKey(name, (key, _) =>
    {
        var newNotBefore = notBefore.Apply(key.NotBefore);
        var newExpires = expires.Apply(key.Expires);
        if (newNotBefore is { } from && newExpires is { } until && from >= until)
            throw new KeyStoreException($"key store '{Name}': key '{name}' would be valid from {Show(from)} until {Show(until)}, which is never; give a not-before earlier than the expiry");
        key.NotBefore = newNotBefore;
        key.Expires = newExpires;
    });

    /// <summary>Soft delete: the key's state becomes Deleted; it can be recovered until its retention period ends.</summary>
    public KeyInfo DeleteKey(string name) => Change((document, now) =>
    {
        var key = document.Find(name) ?? throw UnknownKey(document, name);
        if (key.DeletedOn is not null)
            throw new KeyStoreException($"key store '{Name}': key '{name}' is already deleted (on {Show(key.DeletedOn)}; recoverable until {Show(key.PurgeAfter)})");
        key.DeletedOn = now;
        key.PurgeAfter = now.AddDays(document.RetentionDays);
        key.Updated = now;
        return key.ToKeyInfo(now);
    });

    public KeyInfo RecoverKey(string name) => Change((document, now) =>
    {
        var key = document.Find(name) ?? throw UnknownKey(document, name);
        if (key.DeletedOn is null)
            throw new KeyStoreException($"key store '{Name}': key '{name}' is not deleted; there is nothing to recover");
        key.DeletedOn = null;
        key.PurgeAfter = null;
        key.Updated = now;
        return key.ToKeyInfo(now);
    });

    /// <summary>
    /// Removes a deleted key and its private keys for good. Refused while purge protection is on
    /// and the retention period has not ended (<see cref="VaultRefusal.IsRefusal"/> is true).
    /// </summary>
    public void PurgeKey(string name)
    {
        // By hand rather than Change: the files go under the same lock, or a key created anew
        // under this name between the two steps would lose its private key.
        using var _ = VaultLock.Acquire(Folder, Name, _options.LockTimeout);
        var document = Load();
        var now = Now;
        var key = document.Find(name) ?? throw UnknownKey(document, name);
        if (key.DeletedOn is null)
            throw new KeyStoreException($"key store '{Name}': key '{name}' is not deleted; purge removes only deleted keys (delete it first with `key delete {name}`)");
        if (document.PurgeProtection && now < key.PurgeAfter)
            throw VaultRefusal.Create(
                $"key store '{Name}' has purge protection: deleted key '{name}' is kept until {Show(key.PurgeAfter)} and cannot be purged before then. " +
                $"Nothing was removed; it can still be recovered with `key recover {name}`");
        document.Keys.Remove(key);
        document.Save(_metadataPath);
        string folder = KeyFolder(name);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
            VaultNative.SyncDirectory(Path.GetDirectoryName(folder)!);
        }
    }

    /// <summary>A change to one key that is not deleted.</summary>
    private KeyInfo ChangeKey(string name, Action<StoredKey, DateTimeOffset> change) => Change((document, now) =>
    {
        var key = document.Find(name) ?? throw UnknownKey(document, name);
        if (key.DeletedOn is not null)
            throw new KeyStoreException($"key store '{Name}': key '{name}' is deleted; recover it with `key recover {name}` first");
        change(key, now);
        key.Updated = now;
        return key.ToKeyInfo(now);
    });
}
