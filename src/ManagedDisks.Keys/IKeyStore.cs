using ManagedDisks.Encryption;

namespace ManagedDisks.Keys;

/// <summary>What an identity may do with a key (Key Vault's key permissions).</summary>
[Flags]
public enum KeyOperations
{
    None = 0,
    Get = 1,
    WrapKey = 2,
    UnwrapKey = 4,
}

/// <summary>Whether a key can be used now.</summary>
public enum KeyState
{
    Enabled,
    Disabled,
    Deleted,
    Expired,
    NotYetValid,
    NotFound,
}

public sealed record KeyVersionInfo(string Version, DateTimeOffset Created);

/// <summary>A key as a store reports it: attributes, versions (oldest first) and its access policy.</summary>
public sealed record KeyInfo(
    string Name,
    int Bits,
    KeyState State,
    IReadOnlyList<KeyVersionInfo> Versions,
    DateTimeOffset? NotBefore,
    DateTimeOffset? Expires,
    DateTimeOffset? DeletedOn,
    DateTimeOffset? PurgeAfter,
    IReadOnlyDictionary<string, KeyOperations> Grants)
{
    public string LatestVersion => Versions[^1].Version;
}

/// <summary>
/// A store of key-encryption keys (RSA). It keeps keys and their access policy; the key agent
/// decides who may use them and audits every use. RSA runs only here, never on the I/O path.
/// </summary>
public interface IKeyStore : IDisposable
{
    string Name { get; }

    /// <summary>The algorithm recorded in key slots, e.g. RSA-OAEP-256.</summary>
    string WrapAlgorithm { get; }

    /// <summary>The key and its state now, or null if the store has never heard of it (or it was purged).</summary>
    KeyInfo? GetKey(string name);

    /// <summary>Wraps a DEK with a version's public key. Throws <see cref="KeyStoreException"/> if the version does not exist.</summary>
    byte[] Wrap(string keyName, string version, DataEncryptionKey dek);

    /// <summary>Unwraps with a version's private key. Throws <see cref="KeyStoreException"/> on any failure.</summary>
    DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped);
}
