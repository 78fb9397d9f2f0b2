using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Vault;

namespace ManagedDisks.Tests;

public class SoftwareVaultTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private string _dir = null!;
    private MovableTime _time = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-vault-").FullName;
        _time = new MovableTime(new DateTimeOffset(2030, 6, 1, 12, 0, 0, TimeSpan.Zero));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Folder => Path.Combine(_dir, "vaults", "vault1");
    private string MasterKeyFile => Path.Combine(_dir, "vaults", "vault1.master-key");

    private SoftwareVault Open(SoftwareVaultOptions? options = null) =>
        SoftwareVault.Open("vault1", Folder, MasterKeyFile, (options ?? new SoftwareVaultOptions()) with { Time = _time });

    // ---- creation, files, modes ----

    [Test]
    public void FirstOpenCreatesTheFolderAndMasterKeyOwnerOnly()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        Assert.That(File.GetUnixFileMode(Folder), Is.EqualTo(OwnerOnly | UnixFileMode.UserExecute));
        Assert.That(new FileInfo(MasterKeyFile).Length, Is.EqualTo(32));
        var files = Directory.GetFiles(Folder, "*", SearchOption.AllDirectories).Append(MasterKeyFile).ToList();
        Assert.That(files, Has.Some.EndsWith(".key"));
        foreach (string file in files)
            Assert.That(File.GetUnixFileMode(file), Is.EqualTo(OwnerOnly), file);
        Assert.That(Directory.GetFiles(Folder, "*.tmp", SearchOption.AllDirectories), Is.Empty, "no temporary files left behind");
    }

    [Test]
    public void AMasterKeyProvidedBeforehandIsUsed()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(MasterKeyFile)!);
        byte[] given = RandomNumberGenerator.GetBytes(32);
        File.WriteAllBytes(MasterKeyFile, given);
        using (var vault = Open()) vault.CreateKey("kek1", 2048);
        Assert.That(File.ReadAllBytes(MasterKeyFile), Is.EqualTo(given));
    }

    [Test]
    public void AWrongMasterKeyIsRefusedAtOpen()
    {
        using (var vault = Open()) vault.CreateKey("kek1", 2048);
        File.WriteAllBytes(MasterKeyFile, RandomNumberGenerator.GetBytes(32));
        var e = Assert.Throws<KeyStoreException>(() => Open())!;
        Assert.That(e.Message, Does.Contain("is not the one this vault").And.Contain("restore the original master key"));
    }

    [Test]
    public void AMissingOrShortMasterKeyIsAClearError()
    {
        using (var vault = Open()) vault.CreateKey("kek1", 2048);
        File.WriteAllBytes(MasterKeyFile, new byte[16]);
        Assert.That(Assert.Throws<KeyStoreException>(() => Open())!.Message, Does.Contain("holds 16 bytes, not 32"));
        File.Delete(MasterKeyFile);
        Assert.That(Assert.Throws<KeyStoreException>(() => Open())!.Message, Does.Contain("is missing; restore it"));
        Assert.That(File.Exists(MasterKeyFile), Is.False, "an existing vault never gets a new master key");
    }

    [Test]
    public void KeysWithoutMetadataAreNotOverwrittenByANewVault()
    {
        using (var vault = Open()) vault.CreateKey("kek1", 2048);
        File.Delete(Path.Combine(Folder, "vault.json"));
        var e = Assert.Throws<KeyStoreException>(() => Open())!;
        Assert.That(e.Message, Does.Contain("holds keys but no vault.json"));
    }

    [Test]
    public void DamagedMetadataIsAClearError()
    {
        using var vault = Open();
        File.WriteAllText(Path.Combine(Folder, "vault.json"), "{ not json");
        var e = Assert.Throws<KeyStoreException>(() => vault.GetKey("kek1"))!;
        Assert.That(e.Message, Does.Contain("is damaged").And.Contain("restore it from a backup"));
    }

    // ---- keys and versions ----

    [Test]
    public void CreateAndRotateMakeVersionsNewestLast()
    {
        using var vault = Open();
        var created = vault.CreateKey("kek1", 2048);
        Assert.That(created.Bits, Is.EqualTo(2048));
        Assert.That(created.State, Is.EqualTo(KeyState.Enabled));
        Assert.That(created.Versions, Has.Count.EqualTo(1));
        Assert.That(created.LatestVersion, Does.Match("^[0-9a-f]{32}$"));

        _time.Advance(TimeSpan.FromMinutes(1));
        var rotated = vault.RotateKey("kek1");
        Assert.That(rotated.Versions.Select(v => v.Version), Is.EqualTo(new[] { created.LatestVersion, rotated.LatestVersion }));
        Assert.That(rotated.LatestVersion, Is.Not.EqualTo(created.LatestVersion));
        Assert.That(rotated.Versions[1].Created, Is.GreaterThan(rotated.Versions[0].Created));
        Assert.That(rotated.Bits, Is.EqualTo(2048), "a rotation keeps the size");
        Assert.That(vault.GetKey("kek1"), Is.EqualTo(rotated).Using<KeyInfo>(SameKey));
    }

    [Test]
    public void CreateRefusesADuplicateABadSizeAndABadName()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.CreateKey("kek1", 2048))!.Message, Does.Contain("already has a key 'kek1'").And.Contain("key rotate kek1"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.CreateKey("k2", 1024))!.Message, Does.Contain("2048, 3072, 4096"));
        foreach (string bad in new[] { "", "..", "a/b", ".hidden", "with space", new string('a', 65) })
            Assert.That(Assert.Throws<KeyStoreException>(() => vault.CreateKey(bad, 2048))!.Message, Does.Contain("not a valid key name"), bad);
        Assert.That(vault.ListKeys().Select(k => k.Name), Is.EqualTo(new[] { "kek1" }));
    }

    [Test]
    public void RotatingAnUnknownKeyNamesTheKnownOnes()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        var e = Assert.Throws<KeyStoreException>(() => vault.RotateKey("nope"))!;
        Assert.That(e.Message, Does.Contain("has no key 'nope' (keys: kek1)").And.Contain("key create nope"));
    }

    [TestCase("pkcs1")]
    [TestCase("pkcs8")]
    [TestCase("encrypted-pkcs8")]
    public void ImportsEachPemKindAndWrapsForThatKey(string kind)
    {
        using var original = RSA.Create(2048);
        byte[] passphrase = "correct horse"u8.ToArray();
        string pem = kind switch
        {
            "pkcs1" => original.ExportRSAPrivateKeyPem(),
            "pkcs8" => original.ExportPkcs8PrivateKeyPem(),
            _ => original.ExportEncryptedPkcs8PrivateKeyPem(passphrase, new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 10_000)),
        };
        Assert.That(pem, Does.StartWith(kind switch { "pkcs1" => "-----BEGIN RSA PRIVATE KEY", "pkcs8" => "-----BEGIN PRIVATE KEY", _ => "-----BEGIN ENCRYPTED PRIVATE KEY" }));

        using var vault = Open();
        var info = vault.ImportKey("imported", pem, kind == "encrypted-pkcs8" ? passphrase : default);
        Assert.That(info.Bits, Is.EqualTo(2048));
        AssertSameKeyPair(vault, info, original);
    }

    [Test]
    public void ImportsOpenSslMadePems()
    {
        string openssl = RequireTool("openssl");
        string pkcs1 = Path.Combine(_dir, "k1.pem"), encrypted = Path.Combine(_dir, "k1.enc.pem"), pass = Path.Combine(_dir, "pass");
        File.WriteAllText(pass, "s3cret pass\n");
        Run(openssl, "genrsa", "-traditional", "-out", pkcs1, "3072");
        Run(openssl, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", pkcs1, "-out", encrypted, "-passout", $"file:{pass}");
        Assert.That(File.ReadAllText(pkcs1), Does.Contain("BEGIN RSA PRIVATE KEY"));
        Assert.That(File.ReadAllText(encrypted), Does.Contain("BEGIN ENCRYPTED PRIVATE KEY"));

        using var original = RSA.Create();
        original.ImportFromPem(File.ReadAllText(pkcs1));
        using var vault = Open();
        AssertSameKeyPair(vault, vault.ImportKey("from-pkcs1", File.ReadAllText(pkcs1)), original);
        AssertSameKeyPair(vault, vault.ImportKey("from-encrypted", File.ReadAllText(encrypted), "s3cret pass"u8), original);
    }

    [Test]
    public void ImportIntoAnExistingKeyAddsAVersionButNotTheSameKeyTwice()
    {
        using var vault = Open();
        var first = vault.CreateKey("kek1", 2048);
        using var other = RSA.Create(3072);
        string pem = other.ExportPkcs8PrivateKeyPem();
        var second = vault.ImportKey("kek1", pem);
        Assert.That(second.Versions, Has.Count.EqualTo(2));
        Assert.That(second.Versions[0].Version, Is.EqualTo(first.LatestVersion));
        Assert.That(second.Bits, Is.EqualTo(3072), "bits are the latest version's");
        var e = Assert.Throws<KeyStoreException>(() => vault.ImportKey("kek1", pem))!;
        Assert.That(e.Message, Does.Contain($"already version {second.LatestVersion}"));
        Assert.That(vault.GetKey("kek1")!.Versions, Has.Count.EqualTo(2));
    }

    [Test]
    public void ImportRefusesWhatIsNotAnAcceptableRsaPrivateKey()
    {
        using var vault = Open();
        using var rsa = RSA.Create(2048);
        using var small = RSA.Create(1024);
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        byte[] passphrase = "pw"u8.ToArray();
        string encrypted = rsa.ExportEncryptedPkcs8PrivateKeyPem(passphrase, new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000));

        var cases = new (string Pem, byte[]? Passphrase, string Expected)[]
        {
            ("hello", null, "no PEM block"),
            (rsa.ExportSubjectPublicKeyInfoPem(), null, "'PUBLIC KEY' but no RSA private key"),
            (ec.ExportPkcs8PrivateKeyPem(), null, "RSA keys only"),
            (small.ExportRSAPrivateKeyPem(), null, "RSA-1024 is not accepted"),
            (encrypted, null, "--passphrase-file"),
            (encrypted, "wrong"u8.ToArray(), "check the passphrase"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", null, "damaged"),
        };
        foreach (var (pem, pass, expected) in cases)
        {
            var e = Assert.Throws<KeyStoreException>(() => vault.ImportKey("bad", pem, pass))!;
            Assert.That(e.Message, Does.Contain(expected), pem);
        }
        Assert.That(vault.GetKey("bad"), Is.Null);
    }

    // ---- states ----

    [Test]
    public void StateFollowsAttributesAndTime()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        var now = _time.GetUtcNow();

        Assert.That(vault.DisableKey("kek1").State, Is.EqualTo(KeyState.Disabled));
        Assert.That(vault.EnableKey("kek1").State, Is.EqualTo(KeyState.Enabled));

        var info = vault.SetValidity("kek1", DateChange.Keep, DateChange.To(now.AddDays(1)));
        Assert.That((info.State, info.Expires), Is.EqualTo((KeyState.Enabled, (DateTimeOffset?)now.AddDays(1))));
        _time.Advance(TimeSpan.FromDays(2));
        Assert.That(vault.GetKey("kek1")!.State, Is.EqualTo(KeyState.Expired));

        info = vault.SetValidity("kek1", DateChange.To(_time.GetUtcNow().AddHours(1)), DateChange.To(null));
        Assert.That((info.State, info.Expires), Is.EqualTo((KeyState.NotYetValid, (DateTimeOffset?)null)));
        _time.Advance(TimeSpan.FromHours(2));
        Assert.That(vault.GetKey("kek1")!.State, Is.EqualTo(KeyState.Enabled));

        vault.DisableKey("kek1");
        vault.DeleteKey("kek1");
        Assert.That(vault.GetKey("kek1")!.State, Is.EqualTo(KeyState.Deleted), "deleted wins over disabled");
    }

    [Test]
    public void AnEmptyValidityWindowIsRefused()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        var now = _time.GetUtcNow();
        var e = Assert.Throws<KeyStoreException>(() => vault.SetValidity("kek1", DateChange.To(now.AddDays(2)), DateChange.To(now.AddDays(1))))!;
        Assert.That(e.Message, Does.Contain("which is never"));
        vault.SetValidity("kek1", DateChange.Keep, DateChange.To(now.AddDays(1)));
        Assert.Throws<KeyStoreException>(() => vault.SetValidity("kek1", DateChange.To(now.AddDays(3)), DateChange.Keep), "checked against the kept expiry too");
        Assert.That(vault.GetKey("kek1")!.NotBefore, Is.Null);
    }

    // ---- soft delete, recover, purge ----

    [Test]
    public void SoftDeleteKeepsTheKeyRecoverableForNinetyDays()
    {
        using var vault = Open();
        var created = vault.CreateKey("kek1", 2048);
        vault.Grant("kek1", "encryption-set:des1", KeyOperations.WrapKey | KeyOperations.UnwrapKey);
        var deleted = vault.DeleteKey("kek1");
        Assert.That(deleted.State, Is.EqualTo(KeyState.Deleted));
        Assert.That(deleted.DeletedOn, Is.EqualTo(_time.GetUtcNow()));
        Assert.That(deleted.PurgeAfter, Is.EqualTo(_time.GetUtcNow().AddDays(90)));

        Assert.That(Assert.Throws<KeyStoreException>(() => vault.DeleteKey("kek1"))!.Message, Does.Contain("already deleted"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.CreateKey("kek1", 2048))!.Message, Does.Contain("is deleted").And.Contain("key recover kek1"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.RotateKey("kek1"))!.Message, Does.Contain("key recover kek1"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.EnableKey("kek1"))!.Message, Does.Contain("recover it"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Grant("kek1", "x", KeyOperations.Get))!.Message, Does.Contain("recover it"));

        // Wrap and unwrap leave state to the key agent: a deleted key still works at this level.
        using var dek = DataEncryptionKey.Generate();
        using (var back = vault.Unwrap("kek1", created.LatestVersion, vault.Wrap("kek1", created.LatestVersion, dek)))
            Assert.That(KeyDigests.Matches(back, KeyDigests.Create(dek)), Is.True);

        _time.Advance(TimeSpan.FromDays(30));
        var recovered = vault.RecoverKey("kek1");
        Assert.That((recovered.State, recovered.DeletedOn, recovered.PurgeAfter), Is.EqualTo((KeyState.Enabled, (DateTimeOffset?)null, (DateTimeOffset?)null)));
        Assert.That(recovered.Grants, Has.Count.EqualTo(1), "grants survive a delete and recover");
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.RecoverKey("kek1"))!.Message, Does.Contain("is not deleted"));
    }

    [Test]
    public void PurgeIsRefusedWhilePurgeProtectionIsOn()
    {
        using var vault = Open();
        Assert.That(vault.PurgeProtection, Is.True, "on by default");
        Assert.That(vault.RetentionPeriod, Is.EqualTo(TimeSpan.FromDays(90)));
        vault.CreateKey("kek1", 2048);

        var notDeleted = Assert.Throws<KeyStoreException>(() => vault.PurgeKey("kek1"))!;
        Assert.That(notDeleted.Message, Does.Contain("delete it first"));
        Assert.That(VaultRefusal.IsRefusal(notDeleted), Is.False);

        vault.DeleteKey("kek1");
        _time.Advance(TimeSpan.FromDays(89));
        var refused = Assert.Throws<KeyStoreException>(() => vault.PurgeKey("kek1"))!;
        Assert.That(refused.Message, Does.Contain("purge protection").And.Contain("Nothing was removed").And.Contain("key recover kek1"));
        Assert.That(VaultRefusal.IsRefusal(refused), Is.True);
        Assert.That(vault.GetKey("kek1")!.State, Is.EqualTo(KeyState.Deleted));
        Assert.That(Directory.EnumerateFiles(Path.Combine(Folder, "keys", "kek1")), Is.Not.Empty);

        _time.Advance(TimeSpan.FromDays(2)); // the retention period is over
        vault.PurgeKey("kek1");
        Assert.That(vault.GetKey("kek1"), Is.Null);
    }

    [Test]
    public void PurgeRemovesTheKeyAndItsFilesWhereTheVaultAllowsIt()
    {
        using var vault = Open(new SoftwareVaultOptions { PurgeProtection = false });
        var info = vault.CreateKey("kek1", 2048);
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = vault.Wrap("kek1", info.LatestVersion, dek);
        vault.DeleteKey("kek1");
        vault.PurgeKey("kek1");

        Assert.That(vault.GetKey("kek1"), Is.Null);
        Assert.That(Directory.Exists(Path.Combine(Folder, "keys", "kek1")), Is.False);
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Wrap("kek1", info.LatestVersion, dek))!.Message, Does.Contain("has no key 'kek1'"));
        Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", info.LatestVersion, wrapped));
        Assert.That(vault.CreateKey("kek1", 2048).LatestVersion, Is.Not.EqualTo(info.LatestVersion), "the name is free again");
    }

    // ---- access policy ----

    [Test]
    public void GrantsSetReplaceAndRevoke()
    {
        using var vault = Open();
        vault.CreateKey("kek1", 2048);
        vault.Grant("kek1", "encryption-set:des1", KeyOperations.Get | KeyOperations.WrapKey | KeyOperations.UnwrapKey);
        var info = vault.Grant("kek1", "encryption-set:des2", KeyOperations.WrapKey);
        Assert.That(info.Grants, Is.EquivalentTo(new Dictionary<string, KeyOperations>
        {
            ["encryption-set:des1"] = KeyOperations.Get | KeyOperations.WrapKey | KeyOperations.UnwrapKey,
            ["encryption-set:des2"] = KeyOperations.WrapKey,
        }));

        info = vault.Grant("kek1", "encryption-set:des1", KeyOperations.UnwrapKey);
        Assert.That(info.Grants["encryption-set:des1"], Is.EqualTo(KeyOperations.UnwrapKey), "a grant replaces the identity's operations");

        info = vault.Revoke("kek1", "encryption-set:des2");
        Assert.That(info.Grants.Keys, Is.EqualTo(new[] { "encryption-set:des1" }));
        Assert.That(vault.GetKey("kek1")!.Grants.Keys, Is.EqualTo(new[] { "encryption-set:des1" }));

        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Revoke("kek1", "encryption-set:des2"))!.Message,
            Does.Contain("has no grant on key 'kek1' (granted: encryption-set:des1)"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Grant("kek1", "x", KeyOperations.None))!.Message, Does.Contain("revoke"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Grant("kek1", "has space", KeyOperations.Get))!.Message, Does.Contain("not a valid identity"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Grant("nope", "x", KeyOperations.Get))!.Message, Does.Contain("has no key 'nope'"));
    }

    [Test]
    public void OperationNamesParseAsKeyVaultSpellsThem()
    {
        Assert.That(KeyOperationNames.TryParse("get, wrapKey,UNWRAPKEY", out var ops, out _), Is.True);
        Assert.That(ops, Is.EqualTo(KeyOperations.Get | KeyOperations.WrapKey | KeyOperations.UnwrapKey));
        Assert.That(KeyOperationNames.Format(ops), Is.EqualTo("get,wrapKey,unwrapKey"));
        Assert.That(KeyOperationNames.TryParse("get,sign", out _, out string? error), Is.False);
        Assert.That(error, Does.Contain("'sign' is not a key operation").And.Contain("get, wrapKey, unwrapKey"));
        Assert.That(KeyOperationNames.TryParse(" , ", out _, out error), Is.False);
        Assert.That(error, Does.Contain("no operations given"));
    }

    // ---- wrap and unwrap ----

    [Test]
    public void WrapAndUnwrapRoundTripAcrossAReopenForEveryVersion()
    {
        using var dek = DataEncryptionKey.Generate();
        var wrapped = new List<(string Version, byte[] Wrapped)>();
        using (var vault = Open())
        {
            Assert.That(vault.WrapAlgorithm, Is.EqualTo("RSA-OAEP-256"));
            var info = vault.CreateKey("kek1", 2048);
            wrapped.Add((info.LatestVersion, vault.Wrap("kek1", info.LatestVersion, dek)));
            info = vault.RotateKey("kek1");
            wrapped.Add((info.LatestVersion, vault.Wrap("kek1", info.LatestVersion, dek)));
        }
        Assert.That(wrapped.Select(w => w.Wrapped.Length), Is.All.EqualTo(256));

        using var reopened = Open();
        foreach (var (version, bytes) in wrapped)
        {
            using var back = reopened.Unwrap("kek1", version, bytes);
            Assert.That(KeyDigests.Matches(back, KeyDigests.Create(dek)), Is.True, version);
        }
        var e = Assert.Throws<KeyStoreException>(() => reopened.Unwrap("kek1", wrapped[1].Version, wrapped[0].Wrapped))!;
        Assert.That(e.Message, Does.Contain("cannot unwrap this DEK"));
    }

    [Test]
    public void UnknownKeysAndVersionsAreKeyStoreErrors()
    {
        using var vault = Open();
        var info = vault.CreateKey("kek1", 2048);
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = vault.Wrap("kek1", info.LatestVersion, dek);
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Wrap("nope", info.LatestVersion, dek))!.Message, Does.Contain("has no key 'nope'"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Wrap("kek1", "0123", dek))!.Message, Does.Contain($"has no version '0123' (versions: {info.LatestVersion})"));
        Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", "0123", wrapped));
        Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", info.LatestVersion, wrapped[..100]));
    }

    [Test]
    public void PrivateKeyFilesAreNotPlaintext()
    {
        using var original = RSA.Create(2048);
        string pem = original.ExportPkcs8PrivateKeyPem();
        using var vault = Open();
        var info = vault.ImportKey("kek1", pem);
        byte[] file = File.ReadAllBytes(Path.Combine(Folder, "keys", "kek1", info.LatestVersion + ".key"));

        var parameters = original.ExportParameters(includePrivateParameters: true);
        var secrets = new Dictionary<string, byte[]>
        {
            ["PKCS#8 DER"] = original.ExportPkcs8PrivateKey(),
            ["PKCS#1 DER"] = original.ExportRSAPrivateKey(),
            ["PEM text"] = Encoding.ASCII.GetBytes(pem),
            ["PEM label"] = "PRIVATE KEY"u8.ToArray(),
            ["private exponent"] = parameters.D!,
            ["prime p"] = parameters.P!,
            ["prime q"] = parameters.Q!,
        };
        foreach (var (what, secret) in secrets)
            Assert.That(file.AsSpan().IndexOf(secret.AsSpan(0, Math.Min(32, secret.Length))), Is.EqualTo(-1), what);
        foreach (string other in Directory.GetFiles(Folder, "*", SearchOption.AllDirectories))
            Assert.That(File.ReadAllBytes(other).AsSpan().IndexOf(parameters.D.AsSpan(0, 32)), Is.EqualTo(-1), other);
    }

    [Test]
    public void AnAlteredOrSwappedKeyFileDoesNotOpen()
    {
        using var vault = Open();
        var info = vault.CreateKey("kek1", 2048);
        string first = info.LatestVersion, second = vault.RotateKey("kek1").LatestVersion;
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = vault.Wrap("kek1", second, dek);
        string keys = Path.Combine(Folder, "keys", "kek1");

        File.Copy(Path.Combine(keys, first + ".key"), Path.Combine(keys, second + ".key"), overwrite: true);
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", second, wrapped))!.Message, Does.Contain("altered or belongs to another key"));

        byte[] bytes = File.ReadAllBytes(Path.Combine(keys, first + ".key"));
        bytes[^1] ^= 1;
        File.WriteAllBytes(Path.Combine(keys, first + ".key"), bytes);
        Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", first, vault.Wrap("kek1", first, dek)));

        File.Delete(Path.Combine(keys, first + ".key"));
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", first, wrapped))!.Message, Does.Contain("restore the vault folder"));
    }

    // ---- two administrators ----

    [Test]
    public void AnotherInstanceSeesChangesAtOnce()
    {
        using var one = Open();
        using var two = Open();
        one.CreateKey("kek1", 2048);
        Assert.That(two.GetKey("kek1")!.State, Is.EqualTo(KeyState.Enabled));
        two.DisableKey("kek1");
        Assert.That(one.GetKey("kek1")!.State, Is.EqualTo(KeyState.Disabled));
    }

    [Test]
    public async Task TwoConcurrentWritersLoseNothing()
    {
        using (var setup = Open()) setup.CreateKey("kek1", 2048);
        var writers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
        {
            using var vault = Open();
            for (int i = 0; i < 20; i++) vault.Grant("kek1", $"writer{w}-{i}", KeyOperations.WrapKey);
        })).ToArray();
        await Task.WhenAll(writers);
        using var check = Open();
        Assert.That(check.GetKey("kek1")!.Grants, Has.Count.EqualTo(40));
    }

    [Test]
    public void AVaultLockedByAnotherAdministratorIsAClearErrorAndChangesNothing()
    {
        using var vault = Open(new SoftwareVaultOptions { LockTimeout = TimeSpan.FromMilliseconds(300) });
        vault.CreateKey("kek1", 2048);
        using (VaultLock.Acquire(Folder, "vault1", TimeSpan.FromSeconds(5)))
        {
            var e = Assert.Throws<KeyStoreException>(() => vault.DisableKey("kek1"))!;
            Assert.That(e.Message, Does.Contain("is busy: another administrator holds its lock").And.Contain("try again"));
        }
        Assert.That(vault.GetKey("kek1")!.State, Is.EqualTo(KeyState.Enabled));
        Assert.That(vault.DisableKey("kek1").State, Is.EqualTo(KeyState.Disabled), "works once the lock is released");
    }

    // ---- helpers ----

    private static void AssertSameKeyPair(SoftwareVault vault, KeyInfo info, RSA original)
    {
        using var dek = DataEncryptionKey.Generate();
        // The vault's wrap opens with the original private key...
        byte[] wrapped = vault.Wrap(info.Name, info.LatestVersion, dek);
        byte[] plain = original.Decrypt(wrapped, RSAEncryptionPadding.OaepSHA256);
        using (var fromOriginal = DataEncryptionKey.FromBytes(plain))
            Assert.That(KeyDigests.Matches(fromOriginal, KeyDigests.Create(dek)), Is.True);
        CryptographicOperations.ZeroMemory(plain);
        // ...and the vault unwraps what the original public key wrapped.
        byte[] external = dek.UseKey(original, static (key, rsa) => rsa.Encrypt(key, RSAEncryptionPadding.OaepSHA256));
        using var back = vault.Unwrap(info.Name, info.LatestVersion, external);
        Assert.That(KeyDigests.Matches(back, KeyDigests.Create(dek)), Is.True);
    }

    private static bool SameKey(KeyInfo a, KeyInfo b) =>
        a.Name == b.Name && a.State == b.State && a.Bits == b.Bits && a.Versions.SequenceEqual(b.Versions);

    private static string RequireTool(string name)
    {
        string? path = new[] { "/usr/bin", "/bin", "/usr/local/bin" }.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
        if (path is null) Assert.Ignore($"{name} is not installed");
        return path!;
    }

    private static void Run(string tool, params string[] arguments)
    {
        var info = new ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        using var process = Process.Start(info)!;
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, $"{tool} {string.Join(' ', arguments)}: {stderr}");
    }

    private sealed class MovableTime(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;
        public override DateTimeOffset GetUtcNow() => _now;
        public void Advance(TimeSpan by) => _now += by;
    }
}
