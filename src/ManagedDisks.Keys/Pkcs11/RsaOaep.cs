using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// The two wrap algorithms, named as Key Vault names them and recorded so in key slots:
/// RSA-OAEP-256 (RFC 8017 section 7.1, SHA-256 for the hash and MGF1) and RSA-OAEP (SHA-1 for
/// both). In PKCS#11 both are CKM_RSA_PKCS_OAEP with CK_RSA_PKCS_OAEP_PARAMS (v2.40 section 2.1.8),
/// no label (CKZ_DATA_SPECIFIED with empty source data).
/// </summary>
internal static class RsaOaep
{
    public const string Sha256 = "RSA-OAEP-256";
    public const string Sha1 = "RSA-OAEP";

    /// <summary>In order of preference.</summary>
    public static IReadOnlyList<string> Algorithms { get; } = [Sha256, Sha1];

    public static bool IsKnown(string algorithm) => algorithm is Sha256 or Sha1;

    public static RSAEncryptionPadding Padding(string algorithm) => algorithm switch
    {
        Sha256 => RSAEncryptionPadding.OaepSHA256,
        Sha1 => RSAEncryptionPadding.OaepSHA1,
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "not an RSA-OAEP algorithm"),
    };

    public static IMechanism Mechanism(ISession session, string algorithm)
    {
        var (hash, mgf) = algorithm switch
        {
            Sha256 => (CKM.CKM_SHA256, CKG.CKG_MGF1_SHA256),
            Sha1 => (CKM.CKM_SHA_1, CKG.CKG_MGF1_SHA1),
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "not an RSA-OAEP algorithm"),
        };
        var parameters = session.Factories.MechanismParamsFactory.CreateCkRsaPkcsOaepParams(
            ConvertUtils.UInt64FromCKM(hash), ConvertUtils.UInt64FromCKG(mgf), ConvertUtils.UInt64FromUInt32(CKZ.CKZ_DATA_SPECIFIED), null);
        return session.Factories.MechanismFactory.Create(CKM.CKM_RSA_PKCS_OAEP, parameters);
    }
}
