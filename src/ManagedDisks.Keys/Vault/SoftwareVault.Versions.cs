using System.Security.Cryptography;

namespace ManagedDisks.Keys.Vault;

/// <summary>Keys and their versions: generate, import, rotate.</summary>
public sealed partial class SoftwareVault
{
    private enum VersionTarget { NewKey, ExistingKey, NewOrExistingKey }

    /// <summary>Generates a key pair in the vault as the first version of a new key.</summary>
    public KeyInfo CreateKey(string name, int bits = 3072)
    {
        ValidateKeyName(name);
        ValidateSize(bits, "--size");
        CheckTarget(Load(), name, VersionTarget.NewKey); // before spending a second on RSA-4096 generation
        using var rsa = RSA.Create(bits);
        return AddVersion(name, rsa, "generated", VersionTarget.NewKey);
    }

    /// <summary>
    /// Imports an RSA private key from PEM (PKCS#1, PKCS#8, or encrypted PKCS#8 with
    /// <paramref name="passphrase"/>): a new key, or a new version of an existing one (as Key Vault's import).
    /// </summary>
    public KeyInfo ImportKey(string name, ReadOnlySpan<char> pem, ReadOnlySpan<byte> passphrase = default)
    {
        ValidateKeyName(name);
        using var rsa = PemKeyReader.Read(pem, passphrase);
        ValidateSize(rsa.KeySize, "the imported key");
        return AddVersion(name, rsa, "imported", VersionTarget.NewOrExistingKey);
    }

    /// <summary>Generates a new version of the same size; it becomes the latest.</summary>
    public KeyInfo RotateKey(string name)
    {
        var key = CheckTarget(Load(), name, VersionTarget.ExistingKey)!;
        using var rsa = RSA.Create(key.Versions[^1].Bits);
        return AddVersion(name, rsa, "generated", VersionTarget.ExistingKey);
    }

    private KeyInfo AddVersion(string name, RSA rsa, string origin, VersionTarget target)
    {
        string version = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        string publicKey = Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo());
        byte[] sealedKey = Seal(rsa, name, version);

        return Change((document, now) =>
        {
            var key = CheckTarget(document, name, target);
            if (key?.Versions.FirstOrDefault(v => v.PublicKey == publicKey) is { } same)
                throw new KeyStoreException($"key store '{Name}': this key pair is already version {same.Version} of key '{name}'; nothing imported");

            Directory.CreateDirectory(Path.GetDirectoryName(KeyFolder(name))!, FolderMode);
            Directory.CreateDirectory(KeyFolder(name), FolderMode);
            AtomicFile.Write(KeyFile(name, version), sealedKey); // before the metadata names it: a crash leaves an unnamed file, never a named version without its key
            if (key is null)
            {
                key = new StoredKey { Name = name, Created = now };
                document.Keys.Add(key);
            }
            key.Versions.Add(new StoredVersion { Version = version, Created = now, Bits = rsa.KeySize, Origin = origin, PublicKey = publicKey });
            key.Updated = now;
            return key.ToKeyInfo(now);
        });
    }

    private byte[] Seal(RSA rsa, string name, string version)
    {
        Span<byte> pkcs8 = stackalloc byte[SealedPrivateKey.MaxPkcs8Length];
        Span<byte> sealingKey = stackalloc byte[32];
        try
        {
            if (!rsa.TryExportPkcs8PrivateKey(pkcs8, out int length))
                throw new KeyStoreException($"the private key is larger than {SealedPrivateKey.MaxPkcs8Length} bytes of PKCS#8");
            DeriveSealingKey(sealingKey);
            return SealedPrivateKey.Seal(pkcs8[..length], sealingKey, name, version);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
            CryptographicOperations.ZeroMemory(sealingKey);
        }
    }

    private StoredKey? CheckTarget(VaultDocument document, string name, VersionTarget target)
    {
        var key = document.Find(name);
        if (key is null)
        {
            if (target == VersionTarget.ExistingKey) throw UnknownKey(document, name);
            return null;
        }
        if (key.DeletedOn is not null)
            throw new KeyStoreException($"key store '{Name}': key '{name}' is deleted (recoverable until {Show(key.PurgeAfter)}); recover it with `key recover {name}` first, or choose another name");
        if (target == VersionTarget.NewKey)
            throw new KeyStoreException($"key store '{Name}' already has a key '{name}' ({key.Versions.Count} version{(key.Versions.Count == 1 ? "" : "s")}); add a version with `key rotate {name}`, or choose another name");
        return key;
    }

    private static void ValidateSize(int bits, string what)
    {
        if (!KeySizes.Contains(bits))
            throw new KeyStoreException($"{what}: RSA-{bits} is not accepted; the vault holds RSA keys of {string.Join(", ", KeySizes)} bits");
    }
}
