namespace ManagedDisks.Keys;

/// <summary>
/// The administration a key store offers to <c>managed-disks vault</c> and <c>managed-disks hsm</c>
/// alike: list, show, create and import keys, grant and revoke. What differs by store (rotation,
/// lifecycle) stays on the store itself.
/// </summary>
public interface IKeyStoreAdmin : IKeyStore
{
    /// <summary>Every key in the store, by name.</summary>
    IReadOnlyList<KeyInfo> ListKeys();

    /// <summary>Generates a new RSA key of <paramref name="bits"/> bits.</summary>
    KeyInfo CreateKey(string name, int bits);

    /// <summary>Imports an RSA private key from PEM: a new key, or a new version of an existing one.</summary>
    KeyInfo ImportKey(string name, ReadOnlySpan<char> pem, ReadOnlySpan<byte> passphrase);

    /// <summary>Sets <paramref name="identity"/>'s operations on the key, replacing any it had.</summary>
    void Grant(string keyName, string identity, KeyOperations operations);

    /// <summary>Removes <paramref name="identity"/>'s grant on the key.</summary>
    void Revoke(string keyName, string identity);
}
