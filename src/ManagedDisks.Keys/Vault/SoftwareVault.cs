using System.Security.Cryptography;
using System.Text.RegularExpressions;
using ManagedDisks.Encryption;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// The software key vault (the Azure Key Vault analog): RSA key-encryption keys with versions,
/// attributes, soft delete and an access policy, in a folder (docs/VAULT.md):
/// <code>
///   vault.json                 metadata, public keys, policy (VaultDocument)
///   vault.lock                 flock'd for every change (VaultLock)
///   keys/NAME/VERSION.key      private keys, AES-256-GCM under the master key (SealedPrivateKey)
/// </code>
/// Every change is one read-modify-write of vault.json under the lock, written atomically, so
/// two administrators (or an administrator and the daemon) never see or make half a change.
/// Reads re-read vault.json each time: they are rare, and another process may have changed it.
/// Wrap and unwrap check neither state nor policy: the key agent does, and audits.
/// </summary>
public sealed partial class SoftwareVault : IKeyStoreAdmin
{
    public const string Algorithm = "RSA-OAEP-256";
    public static IReadOnlyList<int> KeySizes { get; } = [2048, 3072, 4096];
    private const string KeysFolderName = "keys";
    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly string _metadataPath;
    private readonly string _masterKeyFile;
    private readonly byte[] _vaultId; // the HKDF salt: public, not key material
    private readonly string _masterKeyCheck;
    private readonly SoftwareVaultOptions _options;

    private SoftwareVault(string name, string folder, string masterKeyFile, VaultDocument document, SoftwareVaultOptions options)
    {
        Name = name;
        Folder = folder;
        _metadataPath = Path.Combine(folder, VaultDocument.FileName);
        _masterKeyFile = masterKeyFile;
        _vaultId = Convert.FromHexString(document.VaultId);
        _masterKeyCheck = document.MasterKeyCheck;
        _options = options;
    }

    public string Name { get; }
    public string Folder { get; }
    public string WrapAlgorithm => Algorithm;

    /// <summary>Whether deleted keys are kept until their retention period ends (from the vault's metadata).</summary>
    public bool PurgeProtection => Load().PurgeProtection;

    public TimeSpan RetentionPeriod => TimeSpan.FromDays(Load().RetentionDays);

    /// <summary>
    /// Opens the vault in <paramref name="folder"/>, creating it (0700) and, if missing, the master
    /// key file (32 random bytes, 0600) on first use. Fails if the master key is not the vault's.
    /// </summary>
    public static SoftwareVault Open(string name, string folder, string masterKeyFile, SoftwareVaultOptions? options = null)
    {
        options ??= new SoftwareVaultOptions();
        folder = Path.GetFullPath(folder);
        masterKeyFile = Path.GetFullPath(masterKeyFile);
        try { Directory.CreateDirectory(folder, FolderMode); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{name}': cannot create the vault folder {folder}: {e.Message}; run as the user that owns the state folder", e);
        }

        using (VaultLock.Acquire(folder, name, options.LockTimeout))
        {
            string metadataPath = Path.Combine(folder, VaultDocument.FileName);
            var document = File.Exists(metadataPath)
                ? VaultDocument.Load(metadataPath, name)
                : Initialize(name, folder, masterKeyFile, metadataPath, options);
            var vault = new SoftwareVault(name, folder, masterKeyFile, document, options);
            Span<byte> sealingKey = stackalloc byte[32];
            try { vault.DeriveSealingKey(sealingKey); }  // fail now, not at the first unwrap, if the master key is wrong
            finally { CryptographicOperations.ZeroMemory(sealingKey); }
            return vault;
        }
    }

    private static VaultDocument Initialize(string name, string folder, string masterKeyFile, string metadataPath, SoftwareVaultOptions options)
    {
        string keys = Path.Combine(folder, KeysFolderName);
        if (Directory.Exists(keys) && Directory.EnumerateFileSystemEntries(keys).Any())
            throw new KeyStoreException($"key store '{name}': the vault folder {folder} holds keys but no {VaultDocument.FileName}; restore {VaultDocument.FileName} from a backup (a new vault would not open the old keys)");
        if (options.RetentionPeriod < TimeSpan.FromDays(1))
            throw new ArgumentOutOfRangeException(nameof(options), "The retention period is at least one day.");
        if (!File.Exists(masterKeyFile))
        {
            try { MasterKey.Create(masterKeyFile); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new KeyStoreException($"key store '{name}': cannot create the master key file {masterKeyFile}: {e.Message}", e);
            }
        }

        byte[] vaultId = RandomNumberGenerator.GetBytes(16);
        Span<byte> master = stackalloc byte[MasterKey.Length];
        try
        {
            MasterKey.Read(masterKeyFile, name, master);
            var document = new VaultDocument
            {
                VaultId = Convert.ToHexStringLower(vaultId),
                Created = options.Time.GetUtcNow(),
                MasterKeyCheck = MasterKey.CheckValue(master, vaultId),
                PurgeProtection = options.PurgeProtection,
                RetentionDays = (int)options.RetentionPeriod.TotalDays,
            };
            document.Save(metadataPath);
            return document;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(master);
        }
    }

    public KeyInfo? GetKey(string name) => Load().Find(name)?.ToKeyInfo(Now);

    /// <summary>Every key, deleted ones included, by name.</summary>
    public IReadOnlyList<KeyInfo> ListKeys()
    {
        var now = Now;
        return Load().Keys.OrderBy(k => k.Name, StringComparer.Ordinal).Select(k => k.ToKeyInfo(now)).ToArray();
    }

    public byte[] Wrap(string keyName, string version, DataEncryptionKey dek)
    {
        ArgumentNullException.ThrowIfNull(dek);
        var stored = FindVersion(Load(), keyName, version);
        using var rsa = RSA.Create();
        try
        {
            rsa.ImportSubjectPublicKeyInfo(Convert.FromBase64String(stored.PublicKey), out _);
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            throw new KeyStoreException($"key store '{Name}': the public key of '{keyName}' version {version} in {_metadataPath} is damaged; restore the vault folder from a backup", e);
        }
        // RFC 8017 section 7.1 with SHA-256 for both the hash and MGF1, as Key Vault's RSA-OAEP-256.
        return dek.UseKey(rsa, static (key, r) => r.Encrypt(key, RSAEncryptionPadding.OaepSHA256));
    }

    public DataEncryptionKey Unwrap(string keyName, string version, byte[] wrapped)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        var stored = FindVersion(Load(), keyName, version);
        using var rsa = LoadPrivateKey(keyName, stored);
        Span<byte> plain = stackalloc byte[512]; // one RSA-4096 block
        try
        {
            if (!rsa.TryDecrypt(wrapped, plain, RSAEncryptionPadding.OaepSHA256, out int written) || written != DataEncryptionKey.Length)
                throw new KeyStoreException($"key store '{Name}': '{keyName}' version {version} unwraps to something other than a {DataEncryptionKey.Length}-byte DEK; the key slot is damaged");
            return DataEncryptionKey.FromBytes(plain[..written]);
        }
        catch (CryptographicException e)
        {
            throw new KeyStoreException($"key store '{Name}': '{keyName}' version {version} cannot unwrap this DEK (it was wrapped by another key, or the key slot is damaged): {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    public void Dispose()
    {
        // Nothing to release: key material lives only for the duration of a call.
    }

    private DateTimeOffset Now => _options.Time.GetUtcNow();

    private VaultDocument Load() => VaultDocument.Load(_metadataPath, Name);

    /// <summary>One read-modify-write of vault.json under the lock.</summary>
    private T Change<T>(Func<VaultDocument, DateTimeOffset, T> change)
    {
        using var _ = VaultLock.Acquire(Folder, Name, _options.LockTimeout);
        var document = Load();
        T result = change(document, Now);
        document.Save(_metadataPath);
        return result;
    }

    private StoredVersion FindVersion(VaultDocument document, string keyName, string version)
    {
        var key = document.Find(keyName) ?? throw UnknownKey(document, keyName);
        return key.FindVersion(version) ?? throw new KeyStoreException(
            $"key store '{Name}': key '{keyName}' has no version '{version}' (versions: {string.Join(", ", key.Versions.Select(v => v.Version))}); the version was never in this vault, or the vault folder was restored from an older backup");
    }

    private KeyStoreException UnknownKey(VaultDocument document, string keyName) => new(
        $"key store '{Name}' has no key '{keyName}' " +
        (document.Keys.Count == 0 ? "(it holds no keys)" : $"(keys: {string.Join(", ", document.Keys.Select(k => k.Name).Order(StringComparer.Ordinal))})") +
        $"; check the name, or create it with `managed-disks vault --store {Name} key create {keyName}`");

    private RSA LoadPrivateKey(string keyName, StoredVersion version)
    {
        string path = KeyFile(keyName, version.Version);
        byte[] file;
        try { file = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException($"key store '{Name}': cannot read the private key of '{keyName}' version {version.Version} ({path}): {e.Message}; restore the vault folder from a backup", e);
        }
        Span<byte> sealingKey = stackalloc byte[32];
        Span<byte> pkcs8 = stackalloc byte[SealedPrivateKey.MaxPkcs8Length];
        try
        {
            DeriveSealingKey(sealingKey);
            int length = SealedPrivateKey.Open(file, sealingKey, keyName, version.Version, pkcs8, $"key store '{Name}': the private key file {path}");
            var rsa = RSA.Create();
            try
            {
                rsa.ImportPkcs8PrivateKey(pkcs8[..length], out _);
                return rsa;
            }
            catch (CryptographicException e)
            {
                rsa.Dispose();
                throw new KeyStoreException($"key store '{Name}': the private key file {path} opens but holds no RSA key; restore it from a backup", e);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sealingKey);
            CryptographicOperations.ZeroMemory(pkcs8);
        }
    }

    /// <summary>Reads the master key, checks it is this vault's, derives the sealing key; the master key is zeroed at once.</summary>
    private void DeriveSealingKey(Span<byte> sealingKey)
    {
        Span<byte> master = stackalloc byte[MasterKey.Length];
        try
        {
            MasterKey.Read(_masterKeyFile, Name, master);
            if (MasterKey.CheckValue(master, _vaultId) != _masterKeyCheck)
                throw new KeyStoreException($"key store '{Name}': the master key file {_masterKeyFile} is not the one this vault ({Folder}) was created with; restore the original master key file (master_key_file in [[key_store]])");
            MasterKey.DeriveSealingKey(master, _vaultId, sealingKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(master);
        }
    }

    /// <summary>A date in messages: UTC to the second.</summary>
    internal static string Show(DateTimeOffset? date) => date?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) ?? "never";

    private string KeyFolder(string keyName) => Path.Combine(Folder, KeysFolderName, keyName);

    private string KeyFile(string keyName, string version) => Path.Combine(KeyFolder(keyName), version + ".key");

    // Key Vault allows letters, digits and '-'; '.' and '_' too, as in the TOML's other names. The
    // first character is a letter or digit, so a name is never "." or ".." in a path.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex KeyNamePattern();

    private static void ValidateKeyName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!KeyNamePattern().IsMatch(name))
            throw new KeyStoreException($"'{name}' is not a valid key name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
}
