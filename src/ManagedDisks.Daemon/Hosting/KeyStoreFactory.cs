using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Pkcs11;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>Opens the key store a [[key_store]] table describes.</summary>
internal static class KeyStoreFactory
{
    public static IKeyStore Open(KeyStoreSettings settings) => settings.Type switch
    {
        "software" => SoftwareVault.Open(settings.Name, settings.Path, settings.MasterKeyFile),
        Pkcs11Store.TypeName => Pkcs11Store.Open(settings.Name, Pkcs11Options(settings)),
        _ => throw new KeyStoreException($"[[key_store]] '{settings.Name}': type '{settings.Type}' is not supported"),
    };

    public static Pkcs11StoreOptions Pkcs11Options(KeyStoreSettings settings) => new()
    {
        Module = settings.Module!,
        TokenLabel = settings.TokenLabel,
        Slot = settings.Slot,
        PinFile = settings.PinFile!,
        GrantsFile = settings.GrantsFile!,
    };
}
