using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>An encryption set's key as its store reports it now, and what the set's identity may do with it.</summary>
internal sealed record SetKeyStatus(KeyState? State, string? LatestVersion, KeyOperations Granted, string AdminCommand, string? Error)
{
    public bool GrantMissing => (Granted & (KeyOperations.WrapKey | KeyOperations.UnwrapKey)) != (KeyOperations.WrapKey | KeyOperations.UnwrapKey);

    /// <summary>The command that gives the missing grant.</summary>
    public string GrantCommand(EncryptionSetSettings set) =>
        $"managed-disks {AdminCommand} --store {set.KeyStore} grant --key {set.Key} --identity {set.Identity} --ops wrapKey,unwrapKey";

    /// <summary>Opens the set's store and reads the key; an unreachable store is reported in <see cref="Error"/>.</summary>
    public static SetKeyStatus Read(DaemonSettings settings, EncryptionSetSettings set)
    {
        try
        {
            using var store = KeyStoreFactory.Open(settings.KeyStores.First(k => k.Name == set.KeyStore));
            return From(store, set);
        }
        catch (KeyStoreException e)
        {
            return Unreachable(e.Message);
        }
    }

    /// <summary>Reads the set's key from a store that is already open.</summary>
    public static SetKeyStatus From(IKeyStore store, EncryptionSetSettings set)
    {
        try
        {
            var key = store.GetKey(set.Key);
            var granted = key is not null && key.Grants.TryGetValue(set.Identity, out var ops) ? ops : KeyOperations.None;
            return new SetKeyStatus(key?.State ?? KeyState.NotFound, key?.LatestVersion, granted, store.AdminCommand, null);
        }
        catch (KeyStoreException e)
        {
            return Unreachable(e.Message);
        }
    }

    public static SetKeyStatus Unreachable(string error) => new(null, null, KeyOperations.None, "vault", error);
}
