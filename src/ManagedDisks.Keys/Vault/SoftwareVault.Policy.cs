namespace ManagedDisks.Keys.Vault;

/// <summary>The access policy: which identity may do what with a key (Key Vault's access policies).</summary>
public sealed partial class SoftwareVault
{
    /// <summary>Sets <paramref name="identity"/>'s operations on the key, replacing any it had.</summary>
    public KeyInfo Grant(string keyName, string identity, KeyOperations operations)
    {
        ValidateIdentity(identity);
        if (operations == KeyOperations.None || (operations & ~(KeyOperations.Get | KeyOperations.WrapKey | KeyOperations.UnwrapKey)) != 0)
            throw new KeyStoreException($"grant one or more of {KeyOperationNames.Valid}; to remove a grant, revoke it");
        return ChangeKey(keyName, (key, _) => key.Grants[identity] = KeyOperationNames.ToNames(operations).ToList());
    }

    /// <summary>Removes <paramref name="identity"/>'s grant on the key.</summary>
    public KeyInfo Revoke(string keyName, string identity)
    {
        ValidateIdentity(identity);
        return ChangeKey(keyName, (key, _) =>
        {
            if (!key.Grants.Remove(identity))
                throw new KeyStoreException($"key store '{Name}': identity '{identity}' has no grant on key '{keyName}' " +
                    (key.Grants.Count == 0 ? "(the key has no grants)" : $"(granted: {string.Join(", ", key.Grants.Keys)})"));
        });
    }

    private static void ValidateIdentity(string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (identity.Length is 0 or > 256 || identity.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
            throw new KeyStoreException($"'{identity}' is not a valid identity: use 1-256 characters without spaces, e.g. encryption-set:des1 (see `managed-disks set show`)");
    }

    void IKeyStoreAdmin.Grant(string keyName, string identity, KeyOperations operations) => Grant(keyName, identity, operations);

    void IKeyStoreAdmin.Revoke(string keyName, string identity) => Revoke(keyName, identity);
}
