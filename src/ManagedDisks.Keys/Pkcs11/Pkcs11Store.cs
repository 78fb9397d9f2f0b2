using System.Collections.Concurrent;
using System.Security.Cryptography;
using ManagedDisks.Encryption;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// Key-encryption keys in an HSM through its PKCS#11 module (docs/PKCS11.md). A key is the RSA
/// private key objects labelled with its name; each one's CKA_ID is a version, the highest the
/// latest. The private key never leaves the token: unwrap is C_Decrypt with CKM_RSA_PKCS_OAEP in
/// it. Wrap uses the public key here, with the algorithm the token can undo: OAEP with SHA-256
/// where the token decrypts it, else SHA-1 (SoftHSM2 2.6 refuses SHA-256), probed once per key
/// version and recorded in the key slot. The access policy is a grants file (<see cref="GrantsFile"/>).
/// Like the vault, wrap and unwrap check neither state nor policy: the key agent does, and audits.
/// </summary>
public sealed partial class Pkcs11Store : IKeyStoreAdmin
{
    public const string TypeName = "pkcs11";

    private readonly Pkcs11StoreOptions _options;
    private readonly TokenConnection? _token;
    private readonly Pkcs11Problem? _pinProblem;
    private readonly GrantsFile _grants;
    private readonly ConcurrentDictionary<string, string> _algorithms = new(StringComparer.Ordinal); // "label\nversion" → algorithm

    private Pkcs11Store(string name, Pkcs11StoreOptions options, TokenConnection? token, Pkcs11Problem? pinProblem)
    {
        Name = name;
        _options = options;
        _token = token;
        _pinProblem = pinProblem;
        _grants = new GrantsFile(options.GrantsFile, name, options.LockTimeout);
    }

    public string Name { get; }

    /// <summary>The preferred algorithm; a key slot records the one used (RSA-OAEP where the token refuses SHA-256).</summary>
    public string WrapAlgorithm => RsaOaep.Sha256;

    public string AdminCommand => "hsm";

    public string GrantsPath => _grants.Path;

    /// <summary>Why the last <see cref="GetKey"/> reported <see cref="KeyState.Unreachable"/> or <see cref="KeyState.AccessRevoked"/>.</summary>
    public string? Problem { get; private set; }

    /// <summary>
    /// Opens the store. The PIN is read now, once (and zeroed when the store is disposed); the
    /// module and token are reached at the first use, so a store whose HSM is away still opens
    /// and reports its keys <see cref="KeyState.Unreachable"/> rather than failing everything else.
    /// </summary>
    public static Pkcs11Store Open(string name, Pkcs11StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.TokenLabel is null && options.Slot is null)
            throw new KeyStoreException($"key store '{name}': give token_label (or slot) in [[key_store]]");
        try
        {
            return new Pkcs11Store(name, options, new TokenConnection(name, options, ReadPin(options.PinFile)), null);
        }
        catch (Pkcs11Problem problem)
        {
            return new Pkcs11Store(name, options, null, problem);
        }
    }

    public bool CanUnwrap(string algorithm) => RsaOaep.IsKnown(algorithm);

    public KeyInfo? GetKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        List<TokenKeyVersion> versions;
        try { versions = Token.Use(session => TokenKeys.Find(session, name)); }
        catch (Pkcs11Problem problem)
        {
            Problem = problem.Message;
            return new KeyInfo(name, 0, problem.State, [], null, null, null, null, _grants.For(name));
        }
        catch (Pkcs11Exception e)
        {
            // A module that answers the search with an error is as good as absent.
            Problem = $"key store '{Name}': cannot read key '{name}': {Pkcs11Module.Message(e)}";
            return new KeyInfo(name, 0, KeyState.Unreachable, [], null, null, null, null, _grants.For(name));
        }
        return versions.Count == 0 ? null : ToKeyInfo(name, versions);
    }

    public byte[] Wrap(string keyName, string version, DataEncryptionKey dek) => Wrap(keyName, version, dek, out _);

    public byte[] Wrap(string keyName, string version, DataEncryptionKey dek, out string algorithm)
    {
        ArgumentNullException.ThrowIfNull(dek);
        (byte[] Wrapped, string Algorithm) result = Run($"wrap with key '{keyName}' version {version}", session =>
        {
            var found = FindVersion(session, keyName, version);
            string chosen = Algorithm(session, found);
            using var rsa = TokenKeys.PublicKey(session, found);
            return (dek.UseKey((rsa, chosen), static (key, s) => s.rsa.Encrypt(key, RsaOaep.Padding(s.chosen))), chosen);
        });
        algorithm = result.Algorithm;
        return result.Wrapped;
    }

    public DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped) =>
        Unwrap(keyName, version, wrapped, Run("probe", session => Algorithm(session, FindVersion(session, keyName, version))));

    public DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped, string algorithm)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        if (!RsaOaep.IsKnown(algorithm))
            throw new KeyStoreException($"key store '{Name}' unwraps {string.Join(" or ", RsaOaep.Algorithms)}, not {algorithm}");
        return Run($"unwrap with key '{keyName}' version {version}", session =>
        {
            var found = FindVersion(session, keyName, version);
            byte[] plain;
            try { plain = session.Decrypt(RsaOaep.Mechanism(session, algorithm), found.Handle, wrapped); }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE)
            {
                throw new KeyStoreException($"key store '{Name}': '{keyName}' version {version} cannot unwrap this DEK ({Pkcs11Errors.Describe(e.RV)}: it was wrapped by another key, or the key slot is damaged)", e);
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_MECHANISM_PARAM_INVALID or CKR.CKR_MECHANISM_INVALID or CKR.CKR_ARGUMENTS_BAD or CKR.CKR_FUNCTION_NOT_SUPPORTED)
            {
                throw new KeyStoreException($"key store '{Name}': the token refuses {algorithm}, with which this key slot was wrapped ({Pkcs11Errors.Describe(e.RV)}); unwrap it on an HSM that does {algorithm}, then let the daemon re-wrap it here", e);
            }
            catch (Pkcs11Exception e) when (e.RV == CKR.CKR_KEY_FUNCTION_NOT_PERMITTED)
            {
                throw new KeyStoreException($"key store '{Name}': '{keyName}' version {version} may not decrypt (CKA_DECRYPT is false); enable it with `managed-disks hsm --store {Name} key enable {keyName}`", e);
            }
            // Copied into locked memory at once; the byte[] PKCS#11 returned is zeroed.
            try
            {
                if (plain.Length != DataEncryptionKey.Length)
                    throw new KeyStoreException($"key store '{Name}': '{keyName}' version {version} unwraps to {plain.Length} bytes, not a {DataEncryptionKey.Length}-byte DEK; the key slot is damaged");
                return DataEncryptionKey.FromBytes(plain);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plain);
            }
        });
    }

    /// <summary>
    /// The algorithm for a version: RSA-OAEP-256 if the token decrypts what we encrypt with it,
    /// else RSA-OAEP. Probed with a random value, not a DEK, once per version and store.
    /// </summary>
    private string Algorithm(ISession session, TokenKeyVersion version)
    {
        string cacheKey = version.Label + "\n" + version.Version;
        if (_algorithms.TryGetValue(cacheKey, out string? known)) return known;
        using var rsa = TokenKeys.PublicKey(session, version);
        Span<byte> probe = stackalloc byte[32];
        RandomNumberGenerator.Fill(probe);
        var refusals = new List<string>();
        foreach (string algorithm in RsaOaep.Algorithms)
        {
            byte[] encrypted = rsa.Encrypt(probe.ToArray(), RsaOaep.Padding(algorithm));
            try
            {
                byte[] back = session.Decrypt(RsaOaep.Mechanism(session, algorithm), version.Handle, encrypted);
                if (back.AsSpan().SequenceEqual(probe)) return _algorithms[cacheKey] = algorithm;
                refusals.Add($"{algorithm}: decrypts to something else");
            }
            catch (Pkcs11Exception e) when (!Pkcs11Errors.IsConnectionLost(e.RV))
            {
                // CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD (SoftHSM2 2.6 for SHA-256), ...: try the next.
                refusals.Add($"{algorithm}: {Pkcs11Errors.Describe(e.RV)}");
            }
        }
        throw new KeyStoreException($"key store '{Name}': the token decrypts neither RSA-OAEP-256 nor RSA-OAEP with '{version.Label}' version {version.Version} ({string.Join("; ", refusals)}); " +
                                    $"check that the key may decrypt (CKA_DECRYPT) and that the token does CKM_RSA_PKCS_OAEP");
    }

    private TokenKeyVersion FindVersion(ISession session, string keyName, string version)
    {
        var versions = TokenKeys.Find(session, keyName);
        if (versions.Count == 0)
            throw new KeyStoreException($"key store '{Name}' has no key '{keyName}' (no RSA private key with CKA_LABEL '{keyName}' and a CKA_ID in {_options.TokenDescription}); " +
                                        $"check the name, or create it with `managed-disks hsm --store {Name} key create {keyName}`");
        return versions.FirstOrDefault(v => v.Version == version) ?? throw new KeyStoreException(
            $"key store '{Name}': key '{keyName}' has no version '{version}' (versions, i.e. CKA_IDs: {string.Join(", ", versions.Select(v => v.Version))}); the object was destroyed or its CKA_ID changed");
    }

    private KeyInfo ToKeyInfo(string name, List<TokenKeyVersion> versions)
    {
        var latest = versions[^1];
        var now = _options.Time.GetUtcNow();
        DateTimeOffset? notBefore = latest.Start is { } start ? new DateTimeOffset(DateTime.SpecifyKind(start.Date, DateTimeKind.Utc)) : null;
        // A CK_DATE has no time: the key is valid through its end date, until midnight UTC after it.
        DateTimeOffset? expires = latest.End is { } end ? new DateTimeOffset(DateTime.SpecifyKind(end.Date, DateTimeKind.Utc)).AddDays(1) : null;
        var state = !latest.CanDecrypt ? KeyState.Disabled
            : now >= expires ? KeyState.Expired
            : now < notBefore ? KeyState.NotYetValid
            : KeyState.Enabled;
        return new KeyInfo(name, latest.Bits, state,
            versions.Select(v => new KeyVersionInfo(v.Version, v.Start is { } s ? new DateTimeOffset(DateTime.SpecifyKind(s.Date, DateTimeKind.Utc)) : DateTimeOffset.UnixEpoch)).ToArray(),
            notBefore, expires, null, null, _grants.For(name));
    }

    private TokenConnection Token => _token ?? throw _pinProblem!;

    /// <summary>One call on the token; a token that cannot be used, or an unexpected return value, becomes a <see cref="KeyStoreException"/>.</summary>
    private T Run<T>(string what, Func<ISession, T> work)
    {
        try { return Token.Use(work); }
        catch (Pkcs11Problem problem) { throw problem.ToKeyStoreException(); }
        catch (Pkcs11Exception e) { throw Failed(e, what); }
    }

    private KeyStoreException Failed(Pkcs11Exception e, string what) =>
        new($"key store '{Name}': cannot {what}: {e.Method} returned {Pkcs11Errors.Describe(e.RV)}", e);

    /// <summary>The PIN bytes, without a trailing newline, in a pinned array the GC never copies.</summary>
    private static byte[] ReadPin(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new Pkcs11Problem(KeyState.AccessRevoked, $"cannot read the PIN file {path}: {e.Message}; put the token's user PIN in it (pin_file in [[key_store]])", e);
        }
        try
        {
            int length = bytes.AsSpan().TrimEnd("\r\n"u8).Length;
            if (length == 0) throw new Pkcs11Problem(KeyState.AccessRevoked, $"the PIN file {path} is empty; put the token's user PIN in it");
            byte[] pin = GC.AllocateArray<byte>(length, pinned: true);
            bytes.AsSpan(0, length).CopyTo(pin);
            return pin;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    public void Dispose() => _token?.Dispose();
}
