using ManagedDisks.Keys.Pkcs11;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Keys;

/// <summary>Adds a key version in whichever kind of store holds the key; it becomes the latest.</summary>
public static class KeyRotation
{
    /// <exception cref="KeyStoreException">The store cannot make versions, or refuses.</exception>
    public static KeyInfo AddVersion(IKeyStore store, string keyName) => store switch
    {
        SoftwareVault vault => vault.RotateKey(keyName),
        Pkcs11Store hsm => hsm.CreateKey(keyName, rotate: true),
        _ => throw new KeyStoreException($"key store '{store.Name}' cannot make new key versions"),
    };
}
