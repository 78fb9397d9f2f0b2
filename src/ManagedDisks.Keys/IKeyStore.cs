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
    /// <summary>The store refused our credentials (an HSM refused the PIN): access was taken away, not the key.</summary>
    AccessRevoked,
    /// <summary>The store cannot be reached now (an HSM module fails, its token is absent); nothing is known about the key.</summary>
    Unreachable,
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
    /// <summary>The newest version; empty when the store could not list versions (<see cref="KeyState.Unreachable"/>, <see cref="KeyState.AccessRevoked"/>).</summary>
    public string LatestVersion => Versions.Count > 0 ? Versions[^1].Version : "";
}

/// <summary>
/// A store of key-encryption keys (RSA). It keeps keys and their access policy; the key agent
/// decides who may use them and audits every use. RSA runs only here, never on the I/O path.
/// </summary>
public interface IKeyStore : IDisposable
{
    string Name { get; }

    /// <summary>
    /// The algorithm the store wraps with, e.g. RSA-OAEP-256; for a store whose algorithm depends
    /// on the key (a PKCS#11 token may refuse OAEP with SHA-256), the one it prefers. The algorithm
    /// actually used is what <see cref="Wrap(string, string, DataEncryptionKey, out string)"/> says.
    /// </summary>
    string WrapAlgorithm { get; }

    /// <summary>The command administering this kind of store, for messages: <c>managed-disks COMMAND --store NAME ...</c>.</summary>
    string AdminCommand => "vault";

    /// <summary>Whether the store can unwrap a key slot that records <paramref name="algorithm"/>.</summary>
    bool CanUnwrap(string algorithm) => algorithm == WrapAlgorithm;

    /// <summary>Wraps a DEK and says with which algorithm, which the key slot records.</summary>
    byte[] Wrap(string keyName, string version, DataEncryptionKey dek, out string algorithm)
    {
        algorithm = WrapAlgorithm;
        return Wrap(keyName, version, dek);
    }

    /// <summary>Unwraps a DEK wrapped with <paramref name="algorithm"/> (as its key slot records).</summary>
    DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped, string algorithm) =>
        CanUnwrap(algorithm)
            ? Unwrap(keyName, version, wrapped)
            : throw new KeyStoreException($"key store '{Name}' does not unwrap {algorithm} (it wraps with {WrapAlgorithm})");

    /// <summary>The key and its state now, or null if the store has never heard of it (or it was purged).</summary>
    KeyInfo? GetKey(string name);

    /// <summary>Wraps a DEK with a version's public key. Throws <see cref="KeyStoreException"/> if the version does not exist.</summary>
    byte[] Wrap(string keyName, string version, DataEncryptionKey dek);

    /// <summary>Unwraps with a version's private key. Throws <see cref="KeyStoreException"/> on any failure.</summary>
    DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped);
}
