using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys.Audit;

namespace ManagedDisks.Keys.Agent;

/// <summary>
/// The only door to key-encryption keys. Every wrap and unwrap is made on behalf of an identity:
/// the agent checks the key's state and the store's access policy for that identity, asks the
/// store to do the RSA work, and writes an audit record whatever the outcome.
/// </summary>
public sealed class KeyAgent(IReadOnlyDictionary<string, IKeyStore> stores, PlatformKeyStore platform, AuditLog audit)
{
    /// <summary>The identity recorded for the built-in platform key.</summary>
    public const string PlatformIdentity = "platform";

    public KeySlot WrapWithPlatformKey(DataEncryptionKey dek, string disk)
    {
        var slot = platform.Wrap(dek);
        audit.Append(new AuditRecord(PlatformIdentity, "wrapKey", "ok", PlatformKeyStore.StoreName, PlatformKeyStore.KeyName, slot.KeyVersion, disk));
        return slot;
    }

    public KeySlot Wrap(string identity, string storeName, string keyName, string? pinnedVersion, DataEncryptionKey dek, string disk)
    {
        var (store, key) = Authorize(identity, storeName, keyName, KeyOperations.WrapKey, pinnedVersion, disk);
        string version = pinnedVersion ?? key.LatestVersion;
        try
        {
            byte[] wrapped = store.Wrap(keyName, version, dek);
            audit.Append(new AuditRecord(identity, "wrapKey", "ok", storeName, keyName, version, disk));
            return new KeySlot
            {
                KeyStore = storeName, KeyName = keyName, KeyVersion = version, WrapAlgorithm = store.WrapAlgorithm,
                WrappedDek = wrapped, Created = DateTimeOffset.UtcNow,
            };
        }
        catch (KeyStoreException e)
        {
            audit.Append(new AuditRecord(identity, "wrapKey", $"error: {e.Message}", storeName, keyName, version, disk));
            throw;
        }
    }

    public DataEncryptionKey Unwrap(string identity, KeySlot slot, string disk)
    {
        if (slot.KeyStore == PlatformKeyStore.StoreName)
        {
            try
            {
                var dek = platform.Unwrap(slot, disk);
                audit.Append(new AuditRecord(PlatformIdentity, "unwrapKey", "ok", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
                return dek;
            }
            catch (KeyStoreException e)
            {
                audit.Append(new AuditRecord(PlatformIdentity, "unwrapKey", $"error: {e.Message}", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
                throw;
            }
        }

        var (store, _) = Authorize(identity, slot.KeyStore, slot.KeyName, KeyOperations.UnwrapKey, slot.KeyVersion, disk);
        if (slot.WrapAlgorithm != store.WrapAlgorithm)
            throw Denied(identity, "unwrapKey", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk,
                $"disk {disk}: its key slot uses {slot.WrapAlgorithm}, which key store '{slot.KeyStore}' does not do ({store.WrapAlgorithm})");
        try
        {
            var dek = store.Unwrap(slot.KeyName, slot.KeyVersion, slot.WrappedDek);
            audit.Append(new AuditRecord(identity, "unwrapKey", "ok", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
            return dek;
        }
        catch (KeyStoreException e)
        {
            audit.Append(new AuditRecord(identity, "unwrapKey", $"error: {e.Message}", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
            throw;
        }
    }

    /// <summary>Checks that the key exists, can be used now, and that the identity holds the operation.</summary>
    private (IKeyStore Store, KeyInfo Key) Authorize(string identity, string storeName, string keyName, KeyOperations operation, string? version, string disk)
    {
        string op = operation == KeyOperations.WrapKey ? "wrapKey" : "unwrapKey";
        if (!stores.TryGetValue(storeName, out var store))
            throw Denied(identity, op, storeName, keyName, version, disk, $"disk {disk}: key store '{storeName}' is not configured; declare it as a [[key_store]]");
        var key = store.GetKey(keyName);
        if (key is null || key.State == KeyState.NotFound)
            throw Denied(identity, op, storeName, keyName, version, disk, $"disk {disk}: key '{keyName}' does not exist in key store '{storeName}'; create or import it with `managed-disks vault --store {storeName} key create {keyName}`");
        if (key.State != KeyState.Enabled)
            throw Denied(identity, op, storeName, keyName, version, disk, $"disk {disk}: key '{keyName}' in '{storeName}' is {key.State.ToString().ToLowerInvariant()}; {Remedy(key.State, storeName, keyName)}");
        if (!key.Grants.TryGetValue(identity, out var granted) || (granted & operation) == 0)
            throw Denied(identity, op, storeName, keyName, version, disk,
                $"disk {disk}: identity '{identity}' may not {op} with key '{keyName}' in '{storeName}'; grant it with `managed-disks vault --store {storeName} grant --key {keyName} --identity {identity} --ops wrapKey,unwrapKey`");
        if (version is not null && key.Versions.All(v => v.Version != version))
            throw Denied(identity, op, storeName, keyName, version, disk, $"disk {disk}: key '{keyName}' in '{storeName}' has no version {version}");
        return (store, key);
    }

    private static string Remedy(KeyState state, string store, string key) => state switch
    {
        KeyState.Disabled => $"enable it with `managed-disks vault --store {store} key enable {key}`",
        KeyState.Deleted => $"recover it with `managed-disks vault --store {store} key recover {key}`",
        KeyState.Expired => $"extend it with `managed-disks vault --store {store} key set-expiry {key} --expires ...`",
        KeyState.NotYetValid => "wait until its not-before time or change it",
        _ => "check the key store",
    };

    private KeyStoreException Denied(string identity, string operation, string store, string key, string? version, string disk, string message)
    {
        audit.Append(new AuditRecord(identity, operation, "denied", store, key, version, disk, message));
        return new KeyStoreException(message);
    }
}
