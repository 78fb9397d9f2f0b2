using System.Security.Cryptography;
using System.Text;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// The vault's master key: 32 random bytes in a file of its own (0600), outside the TOML and,
/// if the operator wishes, outside the state folder (a systemd credential). It is never used
/// directly: HKDF-SHA256 (RFC 5869) with the vault's random id as salt derives one key that
/// seals private keys and one check value that tells a wrong master key from a damaged file.
/// The bytes are read into the caller's stack buffer and zeroed by the caller; no field holds them.
/// </summary>
internal static class MasterKey
{
    public const int Length = 32;
    private static readonly byte[] SealInfo = Encoding.ASCII.GetBytes("managed-disks vault private keys v1");
    private static readonly byte[] CheckInfo = Encoding.ASCII.GetBytes("managed-disks vault master key check v1");

    /// <summary>Creates the file with fresh random bytes (and its folder, 0700); it must not exist.</summary>
    public static void Create(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Span<byte> key = stackalloc byte[Length];
        try
        {
            RandomNumberGenerator.Fill(key);
            AtomicFile.Write(path, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Reads the 32 bytes into <paramref name="destination"/>.</summary>
    public static void Read(string path, string storeName, Span<byte> destination)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            long length = RandomAccess.GetLength(handle);
            if (length != Length)
                throw new KeyStoreException($"key store '{storeName}': the master key file {path} holds {length} bytes, not {Length}; restore the file the vault was created with");
            if (RandomAccess.Read(handle, destination[..Length], 0) != Length)
                throw new KeyStoreException($"key store '{storeName}': the master key file {path} could not be read in full");
        }
        catch (FileNotFoundException e)
        {
            throw new KeyStoreException($"key store '{storeName}': the master key file {path} is missing; restore it (without it no private key in the vault can be used)", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{storeName}': cannot read the master key file {path}: {e.Message}; run as the user that owns the vault", e);
        }
    }

    /// <summary>The AES-256-GCM key that seals this vault's private keys.</summary>
    public static void DeriveSealingKey(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> vaultId, Span<byte> destination) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterKey, destination[..32], vaultId, SealInfo);

    /// <summary>16 bytes (hex) stored in the vault's metadata: reveals nothing of the sealing key, identifies the master key.</summary>
    public static string CheckValue(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> vaultId)
    {
        Span<byte> check = stackalloc byte[16];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, masterKey, check, vaultId, CheckInfo);
        return Convert.ToHexStringLower(check);
    }
}
