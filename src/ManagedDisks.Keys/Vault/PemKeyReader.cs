using System.Security.Cryptography;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// Reads an RSA private key from PEM for import: PKCS#1 (<c>RSA PRIVATE KEY</c>, RFC 8017
/// appendix A.1.2), PKCS#8 (<c>PRIVATE KEY</c>, RFC 5208) or encrypted PKCS#8
/// (<c>ENCRYPTED PRIVATE KEY</c>, RFC 5958 / PBES2), the labels of RFC 7468.
/// </summary>
internal static class PemKeyReader
{
    private const string Pkcs1 = "RSA PRIVATE KEY", Pkcs8 = "PRIVATE KEY", EncryptedPkcs8 = "ENCRYPTED PRIVATE KEY";

    public static RSA Read(ReadOnlySpan<char> pem, ReadOnlySpan<byte> passphrase)
    {
        var labels = new List<string>();
        ReadOnlySpan<char> rest = pem;
        while (PemEncoding.TryFind(rest, out var fields))
        {
            string label = rest[fields.Label].ToString();
            if (label is Pkcs1 or Pkcs8 or EncryptedPkcs8)
                return Import(rest[fields.Location], label, passphrase);
            labels.Add(label);
            rest = rest[fields.Location.End..];
        }
        throw new KeyStoreException(labels.Count == 0
            ? "the file holds no PEM block; give a PEM with -----BEGIN RSA PRIVATE KEY-----, -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----"
            : $"the PEM holds {string.Join(", ", labels.Select(l => $"'{l}'"))} but no RSA private key; give a PEM with -----BEGIN RSA PRIVATE KEY-----, -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----");
    }

    private static RSA Import(ReadOnlySpan<char> block, string label, ReadOnlySpan<byte> passphrase)
    {
        if (label == EncryptedPkcs8 && passphrase.IsEmpty)
            throw new KeyStoreException("the PEM is an encrypted private key; give its passphrase with --passphrase-file FILE");
        var rsa = RSA.Create();
        try
        {
            if (label == EncryptedPkcs8) rsa.ImportFromEncryptedPem(block, passphrase);
            else rsa.ImportFromPem(block);
            return rsa;
        }
        catch (CryptographicException e)
        {
            rsa.Dispose();
            throw new KeyStoreException(label switch
            {
                EncryptedPkcs8 => $"cannot decrypt the encrypted private key: {e.Message}; check the passphrase (and that the key is RSA)",
                Pkcs8 => $"the PKCS#8 private key is not a readable RSA key: {e.Message}; the vault holds RSA keys only",
                _ => $"the PKCS#1 RSA private key is damaged: {e.Message}",
            }, e);
        }
    }
}
