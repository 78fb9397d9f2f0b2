using System.Security.Cryptography;
using System.Text;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// A private key at rest: its PKCS#8 DER sealed with AES-256-GCM (NIST SP 800-38D) under the
/// vault's sealing key. File layout (docs/VAULT.md):
/// <code>
///   0  4  magic "MDVK"
///   4  1  format 1
///   5 12  nonce (random)
///  17 16  tag
///  33  n  ciphertext of the PKCS#8 DER
/// </code>
/// The associated data is <c>"managed-disks vault key v1\0" + key name + "\0" + version</c>, so a
/// file copied under another key's name or version does not open. GCM rather than an encrypted
/// PKCS#8 PEM: no PBKDF2 per unwrap (the master key is already random) and the file is authenticated.
/// </summary>
internal static class SealedPrivateKey
{
    public const int MaxPkcs8Length = 8192; // a 4096-bit RSA PKCS#8 DER is about 2400 bytes
    private const int HeaderLength = 4 + 1 + 12 + 16;
    private static ReadOnlySpan<byte> Magic => "MDVK"u8;

    public static byte[] Seal(ReadOnlySpan<byte> pkcs8, ReadOnlySpan<byte> sealingKey, string keyName, string version)
    {
        var file = new byte[HeaderLength + pkcs8.Length];
        Magic.CopyTo(file);
        file[4] = 1;
        var nonce = file.AsSpan(5, 12);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(sealingKey, 16);
        gcm.Encrypt(nonce, pkcs8, file.AsSpan(HeaderLength), file.AsSpan(17, 16), AssociatedData(keyName, version));
        return file;
    }

    /// <summary>Opens a sealed file into <paramref name="pkcs8"/>; returns the DER length.</summary>
    public static int Open(ReadOnlySpan<byte> file, ReadOnlySpan<byte> sealingKey, string keyName, string version, Span<byte> pkcs8, string where)
    {
        if (file.Length <= HeaderLength || !file[..4].SequenceEqual(Magic) || file[4] != 1 || file.Length - HeaderLength > pkcs8.Length)
            throw new KeyStoreException($"{where} is not a sealed vault key (format 1); restore it from a backup of the vault folder");
        int length = file.Length - HeaderLength;
        try
        {
            using var gcm = new AesGcm(sealingKey, 16);
            gcm.Decrypt(file.Slice(5, 12), file[HeaderLength..], file.Slice(17, 16), pkcs8[..length], AssociatedData(keyName, version));
            return length;
        }
        catch (AuthenticationTagMismatchException e)
        {
            CryptographicOperations.ZeroMemory(pkcs8);
            throw new KeyStoreException($"{where} does not open with the vault's master key: the file was altered or belongs to another key; restore it from a backup of the vault folder", e);
        }
    }

    private static byte[] AssociatedData(string keyName, string version) =>
        Encoding.UTF8.GetBytes($"managed-disks vault key v1\0{keyName}\0{version}");
}
