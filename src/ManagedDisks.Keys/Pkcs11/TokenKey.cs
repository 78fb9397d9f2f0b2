using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// One version of a key in the token: an RSA private key object whose CKA_LABEL is the key's
/// name; its CKA_ID, in lowercase hex, is the version (docs/PKCS11.md). A handle is valid only in
/// the session that found it.
/// </summary>
internal sealed record TokenKeyVersion(
    IObjectHandle Handle,
    string Label,
    byte[] Id,
    bool CanDecrypt,
    DateTime? Start,
    DateTime? End,
    byte[]? Modulus,
    byte[]? Exponent)
{
    public string Version => Convert.ToHexStringLower(Id);

    public int Bits => Modulus is null ? 0 : Modulus.AsSpan().TrimStart((byte)0).Length * 8;
}

/// <summary>Finds and reads the key objects of a token.</summary>
internal static class TokenKeys
{
    private static readonly List<CKA> Attributes = [CKA.CKA_LABEL, CKA.CKA_ID, CKA.CKA_DECRYPT, CKA.CKA_MODULUS, CKA.CKA_PUBLIC_EXPONENT];
    private static readonly List<CKA> Dates = [CKA.CKA_START_DATE, CKA.CKA_END_DATE];

    /// <summary>The versions of key <paramref name="label"/> (all keys when null), oldest (lowest CKA_ID) first. Objects without a CKA_ID are not versions and are left out.</summary>
    public static List<TokenKeyVersion> Find(ISession session, string? label)
    {
        var factory = session.Factories.ObjectAttributeFactory;
        var template = new List<IObjectAttribute>
        {
            factory.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY),
            factory.Create(CKA.CKA_KEY_TYPE, CKK.CKK_RSA),
        };
        if (label is not null) template.Add(factory.Create(CKA.CKA_LABEL, label));
        var versions = new List<TokenKeyVersion>();
        foreach (var handle in session.FindAllObjects(template))
        {
            var a = session.GetAttributeValue(handle, Attributes);
            byte[]? id = Bytes(a[1]);
            if (id is null || id.Length == 0) continue;
            string keyLabel = a[0].CannotBeRead ? "" : a[0].GetValueAsString() ?? "";
            var (start, end) = ReadDates(session, handle, keyLabel, id);
            versions.Add(new TokenKeyVersion(handle, keyLabel, id, !a[2].CannotBeRead && a[2].GetValueAsBool(), start, end, Bytes(a[3]), Bytes(a[4])));
        }
        versions.Sort((x, y) => CompareIds(x.Id, y.Id));
        return versions;
    }

    /// <summary>CKA_IDs as unsigned big-endian numbers: 02 &lt; 0a &lt; 0100.</summary>
    public static int CompareIds(byte[] x, byte[] y)
    {
        var a = x.AsSpan().TrimStart((byte)0);
        var b = y.AsSpan().TrimStart((byte)0);
        return a.Length != b.Length ? a.Length.CompareTo(b.Length) : a.SequenceCompareTo(b);
    }

    /// <summary>The ID after the highest: 01 for a new key, then 02, ... (one byte while it fits, as pkcs11-tool --id 01 writes).</summary>
    public static byte[] NextId(IReadOnlyList<TokenKeyVersion> versions)
    {
        if (versions.Count == 0) return [1];
        var number = new System.Numerics.BigInteger(versions[^1].Id, isUnsigned: true, isBigEndian: true) + 1;
        return number.ToByteArray(isUnsigned: true, isBigEndian: true);
    }

    /// <summary>
    /// The version's public key, for wrapping outside the token: the modulus and exponent of the
    /// private key object (public attributes), or of the public key object with the same label and ID.
    /// </summary>
    public static RSA PublicKey(ISession session, TokenKeyVersion version)
    {
        byte[]? modulus = version.Modulus, exponent = version.Exponent;
        if (modulus is null || exponent is null)
        {
            var factory = session.Factories.ObjectAttributeFactory;
            var found = session.FindAllObjects(
            [
                factory.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), factory.Create(CKA.CKA_KEY_TYPE, CKK.CKK_RSA),
                factory.Create(CKA.CKA_LABEL, version.Label), factory.Create(CKA.CKA_ID, version.Id),
            ]);
            if (found.Count > 0)
            {
                var a = session.GetAttributeValue(found[0], [CKA.CKA_MODULUS, CKA.CKA_PUBLIC_EXPONENT]);
                modulus = Bytes(a[0]);
                exponent = Bytes(a[1]);
            }
        }
        if (modulus is null || exponent is null)
            throw new KeyStoreException($"key '{version.Label}' version {version.Version}: the token shows neither the private key's modulus and public exponent nor a public key object with the same label and CKA_ID; import the public key too");
        return RSA.Create(new RSAParameters { Modulus = modulus.AsSpan().TrimStart((byte)0).ToArray(), Exponent = exponent });
    }

    /// <summary>
    /// CKA_START_DATE and CKA_END_DATE of the private key; where the token cannot read them back
    /// (SoftHSM2 2.6 answers CKR_GENERAL_ERROR for dates of a CKA_PRIVATE object), those of the
    /// public key object with the same label and CKA_ID. Unset on both: no dates.
    /// </summary>
    private static (DateTime? Start, DateTime? End) ReadDates(ISession session, IObjectHandle handle, string label, byte[] id)
    {
        try
        {
            var d = session.GetAttributeValue(handle, Dates);
            if (Date(d[0]) is not null || Date(d[1]) is not null) return (Date(d[0]), Date(d[1]));
        }
        catch (Pkcs11Exception e) when (!Pkcs11Errors.IsConnectionLost(e.RV) || e.RV == CKR.CKR_GENERAL_ERROR)
        {
        }
        var factory = session.Factories.ObjectAttributeFactory;
        var found = session.FindAllObjects(
        [
            factory.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), factory.Create(CKA.CKA_LABEL, label), factory.Create(CKA.CKA_ID, id),
        ]);
        if (found.Count == 0) return (null, null);
        var p = session.GetAttributeValue(found[0], Dates);
        return (Date(p[0]), Date(p[1]));
    }

    private static byte[]? Bytes(IObjectAttribute attribute) => attribute.CannotBeRead ? null : attribute.GetValueAsByteArray();

    private static DateTime? Date(IObjectAttribute attribute)
    {
        if (attribute.CannotBeRead) return null;
        try { return attribute.GetValueAsDateTime(); }
        catch (AttributeValueException) { return null; } // an empty or malformed CK_DATE: no date
    }
}
