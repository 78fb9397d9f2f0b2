using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Lifecycle;

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
        Record(new AuditRecord(PlatformIdentity, "wrapKey", "ok", PlatformKeyStore.StoreName, PlatformKeyStore.KeyName, slot.KeyVersion, disk));
        return slot;
    }

    public KeySlot Wrap(string identity, string storeName, string keyName, string? pinnedVersion, DataEncryptionKey dek, string disk)
    {
        var (store, key) = Authorize(identity, storeName, keyName, KeyOperations.WrapKey, pinnedVersion, disk);
        string version = pinnedVersion ?? key.LatestVersion;
        try
        {
            // The algorithm comes back from the store: a PKCS#11 token decides it per key.
            byte[] wrapped = store.Wrap(keyName, version, dek, out string algorithm);
            Record(new AuditRecord(identity, "wrapKey", "ok", storeName, keyName, version, disk));
            return new KeySlot
            {
                KeyStore = storeName, KeyName = keyName, KeyVersion = version, WrapAlgorithm = algorithm,
                WrappedDek = wrapped, Created = DateTimeOffset.UtcNow,
            };
        }
        catch (KeyStoreException e)
        {
            Record(new AuditRecord(identity, "wrapKey", $"error: {e.Message}", storeName, keyName, version, disk));
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
                Record(new AuditRecord(PlatformIdentity, "unwrapKey", "ok", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
                return dek;
            }
            catch (KeyStoreException e)
            {
                Record(new AuditRecord(PlatformIdentity, "unwrapKey", $"error: {e.Message}", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
                throw;
            }
        }

        var (store, _) = Authorize(identity, slot.KeyStore, slot.KeyName, KeyOperations.UnwrapKey, slot.KeyVersion, disk);
        if (!store.CanUnwrap(slot.WrapAlgorithm))
            throw Denied(identity, "unwrapKey", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk,
                $"disk {disk}: its key slot uses {slot.WrapAlgorithm}, which key store '{slot.KeyStore}' does not do ({store.WrapAlgorithm})");
        try
        {
            var dek = store.Unwrap(slot.KeyName, slot.KeyVersion, slot.WrappedDek, slot.WrapAlgorithm);
            Record(new AuditRecord(identity, "unwrapKey", "ok", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
            return dek;
        }
        catch (KeyStoreException e)
        {
            Record(new AuditRecord(identity, "unwrapKey", $"error: {e.Message}", slot.KeyStore, slot.KeyName, slot.KeyVersion, disk));
            throw;
        }
    }

    /// <summary>The version a set that does not pin one should wrap with now: the key's newest.</summary>
    /// <exception cref="KeyStoreException">The store is not configured or does not know the key.</exception>
    public string LatestVersion(string storeName, string keyName) =>
        TryLatestVersion(storeName, keyName) ?? throw new KeyStoreException($"key '{keyName}' in '{storeName}' has no version that can be read now");

    /// <summary>The key's newest version, or null when the store does not know the key or cannot say now.</summary>
    public string? TryLatestVersion(string storeName, string keyName)
    {
        if (!stores.TryGetValue(storeName, out var store)) return null;
        try
        {
            return store.GetKey(keyName) is { LatestVersion.Length: > 0 } key ? key.LatestVersion : null;
        }
        catch (KeyStoreException)
        {
            return null;
        }
    }

    /// <summary>Checks that the key exists, can be used now, and that the identity holds the operation.</summary>
    private (IKeyStore Store, KeyInfo Key) Authorize(string identity, string storeName, string keyName, KeyOperations operation, string? version, string disk)
    {
        var (store, key, access) = Evaluate(identity, storeName, keyName, operation, version, disk);
        if (!access.IsUsable)
            throw Denied(identity, operation == KeyOperations.WrapKey ? "wrapKey" : "unwrapKey", storeName, keyName, version, disk, access.Reason);
        return (store!, key!);
    }

    /// <summary>
    /// Whether the identity could unwrap this key slot now, without unwrapping and without an
    /// audit record (the key lifecycle asks this on every poll and audits what changes).
    /// </summary>
    public KeyAccess CheckUnwrap(string? identity, KeySlot slot, string disk)
    {
        if (slot.KeyStore == PlatformKeyStore.StoreName) return KeyAccess.Usable;
        if (identity is null)
            return new KeyAccess(KeyUsability.Revoked, $"disk {disk}: no [[encryption_set]] uses key '{slot.KeyName}' of key store '{slot.KeyStore}'; declare one");
        return Evaluate(identity, slot.KeyStore, slot.KeyName, KeyOperations.UnwrapKey, slot.KeyVersion, disk).Access;
    }

    private (IKeyStore? Store, KeyInfo? Key, KeyAccess Access) Evaluate(string identity, string storeName, string keyName, KeyOperations operation, string? version, string disk)
    {
        string op = operation == KeyOperations.WrapKey ? "wrapKey" : "unwrapKey";
        if (!stores.TryGetValue(storeName, out var store))
            return (null, null, Revoked($"disk {disk}: key store '{storeName}' is not configured; declare it as a [[key_store]]"));
        KeyInfo? key;
        try
        {
            key = store.GetKey(keyName);
        }
        catch (KeyStoreException e)
        {
            return (store, null, new KeyAccess(KeyUsability.Unreachable, $"disk {disk}: key store '{storeName}' cannot be read: {e.Message}"));
        }
        if (key is null || key.State == KeyState.NotFound)
            return (store, key, Revoked($"disk {disk}: key '{keyName}' does not exist in key store '{storeName}'; create or import it with `managed-disks {store.AdminCommand} --store {storeName} key create {keyName}`"));
        if (key.State != KeyState.Enabled)
        {
            var usability = key.State == KeyState.Unreachable ? KeyUsability.Unreachable : KeyUsability.Revoked;
            return (store, key, new KeyAccess(usability, $"disk {disk}: key '{keyName}' in '{storeName}' is {StateName(key.State)}; {Remedy(key.State, store.AdminCommand, storeName, keyName)}"));
        }
        if (!key.Grants.TryGetValue(identity, out var granted) || (granted & operation) == 0)
            return (store, key, Revoked($"disk {disk}: identity '{identity}' may not {op} with key '{keyName}' in '{storeName}'; grant it with `managed-disks {store.AdminCommand} --store {storeName} grant --key {keyName} --identity {identity} --ops wrapKey,unwrapKey`"));
        if (version is not null && key.Versions.All(v => v.Version != version))
            return (store, key, Revoked($"disk {disk}: key '{keyName}' in '{storeName}' has no version {version}"));
        return (store, key, KeyAccess.Usable);
    }

    private static KeyAccess Revoked(string reason) => new(KeyUsability.Revoked, reason);

    private static string StateName(KeyState state) => state switch
    {
        KeyState.NotYetValid => "not yet valid",
        KeyState.NotFound => "not found",
        KeyState.AccessRevoked => "not accessible: the store refused our credentials",
        _ => state.ToString().ToLowerInvariant(),
    };

    private static string Remedy(KeyState state, string command, string store, string key) => (state, command) switch
    {
        (KeyState.Disabled, _) => $"enable it with `managed-disks {command} --store {store} key enable {key}`",
        (KeyState.Deleted, _) => $"recover it with `managed-disks {command} --store {store} key recover {key}`",
        (KeyState.Expired, "hsm") => "its CKA_END_DATE has passed; move it with the HSM's own tools, or rotate to a new version with `managed-disks hsm --store " + store + " key rotate " + key + "`",
        (KeyState.Expired, _) => $"extend it with `managed-disks {command} --store {store} key set-expiry {key} --expires ...`",
        (KeyState.NotYetValid, _) => "wait until its not-before time or change it",
        (KeyState.AccessRevoked, _) => $"the token refused the PIN in pin_file of [[key_store]] '{store}' (changed or locked); put the current user PIN in that file",
        (KeyState.Unreachable, _) => $"the HSM of [[key_store]] '{store}' cannot be reached (module error, or token absent); check the module path, that the token is present, and the HSM's own logs",
        _ => "check the key store",
    };

    private KeyStoreException Denied(string identity, string operation, string store, string key, string? version, string disk, string message)
    {
        Record(new AuditRecord(identity, operation, "denied", store, key, version, disk, message));
        return new KeyStoreException(message);
    }

    private static readonly System.Diagnostics.Metrics.Meter Meter = new("ManagedDisks.Keys");

    /// <summary>Creates the key agent's instruments now (see NbdInstruments.Publish).</summary>
    public static string PublishInstruments() => Operations.Name;
    private static readonly System.Diagnostics.Metrics.Counter<long> Operations =
        Meter.CreateCounter<long>("operations", description: "Wraps and unwraps by the key agent, by result");

    /// <summary>Every key use is audited and counted.</summary>
    private void Record(AuditRecord record)
    {
        audit.Append(record);
        string result = record.Result.StartsWith("error", StringComparison.Ordinal) ? "error" : record.Result;
        Operations.Add(1, new KeyValuePair<string, object?>("operation", record.Operation), new KeyValuePair<string, object?>("result", result),
            new KeyValuePair<string, object?>("key_store", record.KeyStore));
    }
}
