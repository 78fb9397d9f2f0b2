using System.Security.Cryptography;
using ManagedDisks.Keys.Vault;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>Administration for <c>managed-disks hsm</c>: keys made in the token, imported, listed, enabled; grants.</summary>
public sealed partial class Pkcs11Store
{
    public static IReadOnlyList<int> KeySizes { get; } = [2048, 3072, 4096];

    /// <summary>Every key in the token (RSA private keys with a CKA_ID, by label).</summary>
    public IReadOnlyList<KeyInfo> ListKeys() => Run("list keys", session => TokenKeys.Find(session, null))
        .GroupBy(v => v.Label, StringComparer.Ordinal)
        .OrderBy(g => g.Key, StringComparer.Ordinal)
        .Select(g => ToKeyInfo(g.Key, g.ToList()))
        .ToArray();

    /// <summary>
    /// Generates a key pair in the token (C_GenerateKeyPair): a new key with CKA_ID 01, or with
    /// <paramref name="rotate"/> a new version of an existing one (the next CKA_ID). The private
    /// key is CKA_SENSITIVE and not CKA_EXTRACTABLE: it can decrypt, never leave.
    /// </summary>
    public KeyInfo CreateKey(string name, int bits = 3072, bool rotate = false)
    {
        ValidateName(name);
        Run($"create key '{name}'", session =>
        {
            var existing = TokenKeys.Find(session, name);
            CheckTarget(name, existing, rotate);
            if (rotate) bits = existing[^1].Bits;
            if (!KeySizes.Contains(bits))
                throw new KeyStoreException($"RSA-{bits} is not accepted; use {string.Join(", ", KeySizes)} bits");
            var f = session.Factories.ObjectAttributeFactory;
            byte[] id = TokenKeys.NextId(existing);
            var publicTemplate = new List<IObjectAttribute>
            {
                f.Create(CKA.CKA_TOKEN, true), f.Create(CKA.CKA_PRIVATE, false), f.Create(CKA.CKA_LABEL, name), f.Create(CKA.CKA_ID, id),
                f.Create(CKA.CKA_ENCRYPT, true), f.Create(CKA.CKA_VERIFY, false), f.Create(CKA.CKA_WRAP, false),
                f.Create(CKA.CKA_MODULUS_BITS, (ulong)bits), f.Create(CKA.CKA_PUBLIC_EXPONENT, new byte[] { 1, 0, 1 }),
                f.Create(CKA.CKA_START_DATE, Today),
            };
            var privateTemplate = PrivateAttributes(session, name, id);
            session.GenerateKeyPair(session.Factories.MechanismFactory.Create(CKM.CKM_RSA_PKCS_KEY_PAIR_GEN), publicTemplate, privateTemplate, out _, out _);
            return 0;
        });
        return GetKey(name)!;
    }

    /// <summary>
    /// Imports an RSA private key from PEM into the token (C_CreateObject, sensitive, not
    /// extractable) with its public key: a new key, or a new version of an existing one.
    /// </summary>
    public KeyInfo ImportKey(string name, ReadOnlySpan<char> pem, ReadOnlySpan<byte> passphrase = default)
    {
        ValidateName(name);
        using var rsa = PemKeyReader.Read(pem, passphrase);
        if (!KeySizes.Contains(rsa.KeySize))
            throw new KeyStoreException($"the imported key: RSA-{rsa.KeySize} is not accepted; the store holds RSA keys of {string.Join(", ", KeySizes)} bits");
        var p = rsa.ExportParameters(includePrivateParameters: true);
        try
        {
            Run($"import key '{name}'", session =>
            {
                var existing = TokenKeys.Find(session, name);
                if (existing.FirstOrDefault(v => v.Modulus is { } m && m.AsSpan().TrimStart((byte)0).SequenceEqual(p.Modulus)) is { } same)
                    throw new KeyStoreException($"key store '{Name}': this key pair is already version {same.Version} of key '{name}'; nothing imported");
                byte[] id = TokenKeys.NextId(existing);
                var f = session.Factories.ObjectAttributeFactory;
                var privateTemplate = PrivateAttributes(session, name, id);
                privateTemplate.AddRange(
                [
                    f.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY), f.Create(CKA.CKA_KEY_TYPE, CKK.CKK_RSA),
                    f.Create(CKA.CKA_MODULUS, p.Modulus), f.Create(CKA.CKA_PUBLIC_EXPONENT, p.Exponent), f.Create(CKA.CKA_PRIVATE_EXPONENT, p.D),
                    f.Create(CKA.CKA_PRIME_1, p.P), f.Create(CKA.CKA_PRIME_2, p.Q), f.Create(CKA.CKA_EXPONENT_1, p.DP),
                    f.Create(CKA.CKA_EXPONENT_2, p.DQ), f.Create(CKA.CKA_COEFFICIENT, p.InverseQ),
                ]);
                var publicTemplate = new List<IObjectAttribute>
                {
                    f.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), f.Create(CKA.CKA_KEY_TYPE, CKK.CKK_RSA),
                    f.Create(CKA.CKA_TOKEN, true), f.Create(CKA.CKA_PRIVATE, false), f.Create(CKA.CKA_LABEL, name), f.Create(CKA.CKA_ID, id),
                    f.Create(CKA.CKA_ENCRYPT, true), f.Create(CKA.CKA_VERIFY, false), f.Create(CKA.CKA_WRAP, false),
                    f.Create(CKA.CKA_MODULUS, p.Modulus), f.Create(CKA.CKA_PUBLIC_EXPONENT, p.Exponent), f.Create(CKA.CKA_START_DATE, Today),
                };
                var created = session.CreateObject(privateTemplate);
                try { session.CreateObject(publicTemplate); }
                catch (Pkcs11Exception)
                {
                    session.DestroyObject(created); // all or nothing
                    throw;
                }
                return 0;
            });
        }
        finally
        {
            // The attribute lists hold copies Pkcs11Interop freed; these are ours.
            foreach (var secret in new[] { p.D, p.P, p.Q, p.DP, p.DQ, p.InverseQ })
                if (secret is not null) CryptographicOperations.ZeroMemory(secret);
        }
        return GetKey(name)!;
    }

    /// <summary>Sets CKA_DECRYPT on every version: false disables the key (the token refuses to unwrap with it).</summary>
    public KeyInfo SetEnabled(string name, bool enabled)
    {
        Run($"{(enabled ? "enable" : "disable")} key '{name}'", session =>
        {
            var versions = TokenKeys.Find(session, name);
            if (versions.Count == 0) throw UnknownKey(name);
            var attribute = session.Factories.ObjectAttributeFactory.Create(CKA.CKA_DECRYPT, enabled);
            foreach (var version in versions)
            {
                try { session.SetAttributeValue(version.Handle, [attribute]); }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ATTRIBUTE_READ_ONLY or CKR.CKR_ACTION_PROHIBITED)
                {
                    throw new KeyStoreException($"key store '{Name}': the token does not let CKA_DECRYPT of '{name}' version {version.Version} change ({Pkcs11Errors.Describe(e.RV)}: the object is not CKA_MODIFIABLE); change it with the HSM's own tools", e);
                }
            }
            return 0;
        });
        return GetKey(name)!;
    }

    /// <summary>Sets <paramref name="identity"/>'s operations on the key, replacing any it had. The key must exist in the token.</summary>
    public KeyInfo Grant(string keyName, string identity, KeyOperations operations)
    {
        ValidateIdentity(identity);
        if (operations == KeyOperations.None || (operations & ~(KeyOperations.Get | KeyOperations.WrapKey | KeyOperations.UnwrapKey)) != 0)
            throw new KeyStoreException($"grant one or more of {KeyOperationNames.Valid}; to remove a grant, revoke it");
        var key = GetKey(keyName) ?? throw UnknownKey(keyName);
        if (key.State is KeyState.Unreachable or KeyState.AccessRevoked)
            throw new KeyStoreException($"key store '{Name}': cannot check that key '{keyName}' exists: the token is {(key.State == KeyState.Unreachable ? "unreachable" : "refusing the PIN")}; try again when it can be used");
        var grants = _grants.Change(keyName, g => g[identity] = KeyOperationNames.ToNames(operations).ToList());
        return key with { Grants = grants };
    }

    /// <summary>Removes <paramref name="identity"/>'s grant on the key (also for a key no longer in the token).</summary>
    public IReadOnlyDictionary<string, KeyOperations> Revoke(string keyName, string identity)
    {
        ValidateIdentity(identity);
        return _grants.Change(keyName, g =>
        {
            if (!g.Remove(identity))
                throw new KeyStoreException($"key store '{Name}': identity '{identity}' has no grant on key '{keyName}' " +
                                            (g.Count == 0 ? "(the key has no grants)" : $"(granted: {string.Join(", ", g.Keys)})"));
        });
    }

    KeyInfo IKeyStoreAdmin.CreateKey(string name, int bits) => CreateKey(name, bits);

    void IKeyStoreAdmin.Grant(string keyName, string identity, KeyOperations operations) => Grant(keyName, identity, operations);

    void IKeyStoreAdmin.Revoke(string keyName, string identity) => Revoke(keyName, identity);

    private List<IObjectAttribute> PrivateAttributes(ISession session, string name, byte[] id)
    {
        var f = session.Factories.ObjectAttributeFactory;
        return
        [
            f.Create(CKA.CKA_TOKEN, true), f.Create(CKA.CKA_PRIVATE, true), f.Create(CKA.CKA_LABEL, name), f.Create(CKA.CKA_ID, id),
            f.Create(CKA.CKA_SENSITIVE, true), f.Create(CKA.CKA_EXTRACTABLE, false), f.Create(CKA.CKA_MODIFIABLE, true),
            f.Create(CKA.CKA_DECRYPT, true), f.Create(CKA.CKA_SIGN, false), f.Create(CKA.CKA_UNWRAP, false),
            // No CKA_START_DATE here: SoftHSM2 2.6 cannot read dates of private objects back. The public key has it.
        ];
    }

    private DateTime Today => _options.Time.GetUtcNow().UtcDateTime.Date;

    private void CheckTarget(string name, List<TokenKeyVersion> existing, bool rotate)
    {
        if (rotate && existing.Count == 0) throw UnknownKey(name);
        if (!rotate && existing.Count > 0)
            throw new KeyStoreException($"key store '{Name}' already has a key '{name}' ({existing.Count} version{(existing.Count == 1 ? "" : "s")}); add a version with `key rotate {name}`, or choose another name");
    }

    private KeyStoreException UnknownKey(string name) => new(
        $"key store '{Name}' has no key '{name}' in {_options.TokenDescription}; list the keys with `managed-disks hsm --store {Name} key list`, or create it with `key create {name}`");

    private static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') || !char.IsAsciiLetterOrDigit(name[0]))
            throw new KeyStoreException($"'{name}' is not a valid key name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
    }

    private static void ValidateIdentity(string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (identity.Length is 0 or > 256 || identity.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
            throw new KeyStoreException($"'{identity}' is not a valid identity: use 1-256 characters without spaces, e.g. encryption-set:des1 (see `managed-disks set show`)");
    }
}
