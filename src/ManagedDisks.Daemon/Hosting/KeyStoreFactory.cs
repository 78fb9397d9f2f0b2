using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>Opens the key store a [[key_store]] table describes.</summary>
internal static class KeyStoreFactory
{
    public static IKeyStore Open(KeyStoreSettings settings) => settings.Type switch
    {
        "software" => SoftwareVault.Open(settings.Name, settings.Path, settings.MasterKeyFile),
        _ => throw new KeyStoreException($"[[key_store]] '{settings.Name}': type '{settings.Type}' is not supported"),
    };
}
