using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ManagedDisks.Keys;

/// <summary>
/// Loads an encrypted PKCS#8 PEM private key with OpenSSL itself (PEM_read_bio_PrivateKey).
/// .NET's <see cref="RSA.ImportFromEncryptedPem(ReadOnlySpan{char}, ReadOnlySpan{byte})"/> decrypts
/// and parses the key in managed buffers that it does not wipe: a memory image of the daemon
/// still held the platform key's PKCS#1 and PKCS#8 DER (d, p, q, dP, dQ, qInv) long after the RSA
/// object was disposed (tests/reliability/secrets-search.py). OpenSSL decrypts into buffers it
/// cleanses, so the plaintext key exists only inside the EVP_PKEY, which is freed with
/// BN_clear_free when the RSA object is disposed.
/// </summary>
internal static partial class OpenSslPrivateKey
{
    private const string LibCrypto = "libcrypto.so.3";

    [LibraryImport(LibCrypto, EntryPoint = "BIO_new_mem_buf")]
    private static unsafe partial IntPtr BioNewMemBuf(byte* buffer, int length);

    [LibraryImport(LibCrypto, EntryPoint = "BIO_free")]
    private static partial int BioFree(IntPtr bio);

    // With no callback, OpenSSL's default one takes `passphrase` as a NUL-terminated passphrase.
    [LibraryImport(LibCrypto, EntryPoint = "PEM_read_bio_PrivateKey")]
    private static unsafe partial IntPtr PemReadBioPrivateKey(IntPtr bio, IntPtr existing, IntPtr callback, byte* passphrase);

    [LibraryImport(LibCrypto, EntryPoint = "ERR_clear_error")]
    private static partial void ErrClearError();

    /// <exception cref="CryptographicException">The PEM is not an RSA private key this passphrase decrypts.</exception>
    public static unsafe RSA LoadEncryptedPem(ReadOnlySpan<byte> pem, ReadOnlySpan<byte> passphrase)
    {
        byte[] terminated = GC.AllocateArray<byte>(passphrase.Length + 1, pinned: true);
        try
        {
            passphrase.CopyTo(terminated);
            IntPtr key;
            fixed (byte* pemBytes = pem)
            fixed (byte* pass = terminated)
            {
                IntPtr bio = BioNewMemBuf(pemBytes, pem.Length);
                if (bio == IntPtr.Zero) throw new CryptographicException("OpenSSL could not allocate a memory BIO");
                try { key = PemReadBioPrivateKey(bio, IntPtr.Zero, IntPtr.Zero, pass); }
                finally { BioFree(bio); }
            }
            if (key == IntPtr.Zero)
            {
                ErrClearError();
                throw new CryptographicException("the PEM is not a private key that this passphrase decrypts");
            }
            using var handle = new SafeEvpPKeyHandle(key, ownsHandle: true);
            return new RSAOpenSsl(handle); // takes its own reference; ours is released by the using
        }
        finally
        {
            CryptographicOperations.ZeroMemory(terminated);
        }
    }
}
