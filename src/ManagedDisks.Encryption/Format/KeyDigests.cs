using System.Security.Cryptography;

namespace ManagedDisks.Encryption.Format;

/// <summary>PBKDF2-HMAC-SHA256 over the DEK: a wrong key is detected before any sector is decrypted.</summary>
public static class KeyDigests
{
    private const int Iterations = 1000; // the DEK is 512 random bits: stretching adds nothing but start-up time
    private const int Length = 32;

    public static KeyDigest Create(DataEncryptionKey key)
    {
        byte[] salt = RandomNumberGenerator.GetBytes(32);
        return new KeyDigest { Iterations = Iterations, Salt = salt, Value = Compute(key, salt, Iterations) };
    }

    public static bool Matches(DataEncryptionKey key, KeyDigest digest)
    {
        if (digest.Type != "pbkdf2" || digest.Hash != "sha256" || digest.Iterations is < 1 or > 10_000_000) return false;
        return CryptographicOperations.FixedTimeEquals(Compute(key, digest.Salt, digest.Iterations), digest.Value);
    }

    private static byte[] Compute(DataEncryptionKey key, byte[] salt, int iterations)
    {
        var result = new byte[Length];
        key.UseKey((bytes, _) => Rfc2898DeriveBytes.Pbkdf2(bytes, salt, result, iterations, HashAlgorithmName.SHA256), null);
        return result;
    }
}
