using System.Security.Cryptography;
using System.Text;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Keys;

/// <summary>A key store that cannot do what was asked; the message says what to do.</summary>
public sealed class KeyStoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The platform-managed key: an RSA-3072 key pair the daemon creates in its state folder on
/// first start, used when a disk names no customer key. The private key is stored as an
/// encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2-SHA256) under a random secret kept in a separate
/// 0600 file, which an operator can move off the disk (e.g. a systemd credential).
/// DEKs are wrapped with RSA-OAEP-SHA256.
/// </summary>
public sealed class PlatformKeyStore : IDisposable
{
    public const string StoreName = "platform";
    public const string KeyName = "platform-key";
    public const string WrapAlgorithm = "RSA-OAEP-256";
    private const int KeyBits = 3072;

    private readonly RSA _rsa;

    private PlatformKeyStore(RSA rsa)
    {
        _rsa = rsa;
        // The version names the key pair itself, so a slot can never be unwrapped by a stranger key unnoticed.
        KeyVersion = Convert.ToHexStringLower(SHA256.HashData(rsa.ExportSubjectPublicKeyInfo()))[..16];
    }

    public string KeyVersion { get; }

    /// <summary>Loads the key, creating it (and its secret, if missing) on first use.</summary>
    public static PlatformKeyStore OpenOrCreate(string keyPath, string secretPath)
    {
        if (!File.Exists(keyPath))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(keyPath)!);
            byte[] secret = File.Exists(secretPath) ? ReadSecret(secretPath) : CreateSecret(secretPath);
            using var created = RSA.Create(KeyBits);
            string pem = created.ExportEncryptedPkcs8PrivateKeyPem(secret,
                new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 100_000));
            CryptographicOperations.ZeroMemory(secret);
            WriteAtomically(keyPath, Encoding.ASCII.GetBytes(pem));
        }

        if (!File.Exists(secretPath))
            throw new KeyStoreException($"the platform key {keyPath} exists but its secret {secretPath} is missing; restore the secret file (without it no disk on the platform key can be opened)");
        byte[] password = ReadSecret(secretPath);
        try
        {
            // Not RSA.ImportFromEncryptedPem: it leaves the decrypted key in unwiped managed buffers.
            return new PlatformKeyStore(OpenSslPrivateKey.LoadEncryptedPem(File.ReadAllBytes(keyPath), password));
        }
        catch (CryptographicException e)
        {
            throw new KeyStoreException($"cannot decrypt the platform key {keyPath} with the secret {secretPath}: {e.Message}; the secret does not belong to this key", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(password);
        }
    }

    public KeySlot Wrap(DataEncryptionKey dek)
    {
        var wrapped = new byte[_rsa.KeySize / 8];
        int written = 0;
        dek.UseKey((key, _) => _rsa.TryEncrypt(key, wrapped, RSAEncryptionPadding.OaepSHA256, out written), null);
        return new KeySlot
        {
            KeyStore = StoreName,
            KeyName = KeyName,
            KeyVersion = KeyVersion,
            WrapAlgorithm = WrapAlgorithm,
            WrappedDek = wrapped[..written],
            Created = DateTimeOffset.UtcNow,
        };
    }

    public bool CanUnwrap(KeySlot slot) => slot.KeyStore == StoreName && slot.KeyName == KeyName;

    public DataEncryptionKey Unwrap(KeySlot slot, string disk)
    {
        if (slot.WrapAlgorithm != WrapAlgorithm)
            throw new KeyStoreException($"disk {disk}: key slot uses {slot.WrapAlgorithm}, the platform key wraps with {WrapAlgorithm}");
        if (slot.KeyVersion != KeyVersion)
            throw new KeyStoreException($"disk {disk} was wrapped by platform key {slot.KeyVersion}, but this state folder holds platform key {KeyVersion}; restore the keys/ folder that belongs to this disk");
        Span<byte> plain = stackalloc byte[_rsa.KeySize / 8];
        try
        {
            if (!_rsa.TryDecrypt(slot.WrappedDek, plain, RSAEncryptionPadding.OaepSHA256, out int written) || written != DataEncryptionKey.Length)
                throw new KeyStoreException($"disk {disk}: the wrapped DEK does not unwrap to a {DataEncryptionKey.Length}-byte key");
            return DataEncryptionKey.FromBytes(plain[..DataEncryptionKey.Length]);
        }
        catch (CryptographicException e)
        {
            throw new KeyStoreException($"disk {disk}: the platform key cannot unwrap its DEK (wrong key or damaged key slot): {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private static byte[] CreateSecret(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] secret = Encoding.ASCII.GetBytes(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        WriteAtomically(path, secret);
        return secret;
    }

    private static byte[] ReadSecret(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int length = bytes.AsSpan().TrimEnd("\r\n "u8).Length;
        byte[] trimmed = bytes[..length];
        CryptographicOperations.ZeroMemory(bytes);
        if (trimmed.Length == 0) throw new KeyStoreException($"the platform key secret {path} is empty");
        return trimmed;
    }

    /// <summary>Write, sync, rename: a crash leaves the old file or the new one, never half of one. Mode 0600.</summary>
    internal static void WriteAtomically(string path, byte[] content)
    {
        string temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, new FileStreamOptions
               {
                   Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }

    public void Dispose() => _rsa.Dispose();
}
