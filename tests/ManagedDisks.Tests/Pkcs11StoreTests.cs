using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ManagedDisks.Encryption;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Agent;
using ManagedDisks.Keys.Audit;
using ManagedDisks.Keys.Pkcs11;
using ManagedDisks.Keys.Vault;
using Net.Pkcs11Interop.Common;

namespace ManagedDisks.Tests;

/// <summary>
/// The PKCS#11 store on a real SoftHSM2 token in a temporary folder (../shared/TESTING.md), with
/// keys made and destroyed from outside by opensc's pkcs11-tool, as an HSM administrator would.
/// Each test has its own token. Skipped when SoftHSM2 or pkcs11-tool is missing.
/// </summary>
[NonParallelizable]
public partial class Pkcs11StoreTests
{
    private const string Module = "/usr/lib/softhsm/libsofthsm2.so";
    private const string Pin = "1234";
    private static string s_root = null!;
    private string _dir = null!;
    private string _token = null!;

    [OneTimeSetUp]
    public void OneTimeSetUp()
    {
        if (!File.Exists(Module) || !File.Exists("/usr/bin/softhsm2-util") || !File.Exists("/usr/bin/pkcs11-tool"))
            Assert.Ignore("SoftHSM2 and opensc are not installed (apt-get install softhsm2 opensc)");
        s_root = Directory.CreateTempSubdirectory("md-p11-").FullName;
        Directory.CreateDirectory(Path.Combine(s_root, "tokens"));
        File.WriteAllText(Path.Combine(s_root, "softhsm2.conf"), $"directories.tokendir = {s_root}/tokens\nlog.level = ERROR\n");
        // SoftHSM2 reads SOFTHSM2_CONF with getenv at C_Initialize: set it in the C environment,
        // which Environment.SetEnvironmentVariable does not change on Linux.
        Assert.That(SetEnv("SOFTHSM2_CONF", Path.Combine(s_root, "softhsm2.conf"), 1), Is.Zero);
    }

    [OneTimeTearDown]
    public void OneTimeTearDown()
    {
        if (s_root is not null) Directory.Delete(s_root, true);
    }

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-p11-test-").FullName;
        _token = "t" + Guid.NewGuid().ToString("N")[..10];
        Run("softhsm2-util", "--init-token", "--free", "--label", _token, "--pin", Pin, "--so-pin", "5678");
        File.WriteAllText(PinFile, Pin + "\n");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string PinFile => Path.Combine(_dir, "pin");

    private Pkcs11StoreOptions Options(string? token = null, string? pinFile = null, string module = Module, TimeProvider? time = null) => new()
    {
        Module = module, TokenLabel = token ?? _token, PinFile = pinFile ?? PinFile,
        GrantsFile = Path.Combine(_dir, "pkcs11", "hsm1.grants.json"), Time = time ?? TimeProvider.System,
    };

    private Pkcs11Store Open(Pkcs11StoreOptions? options = null) => Pkcs11Store.Open("hsm1", options ?? Options());

    /// <summary>A key pair made by the HSM's own tool, as an administrator would.</summary>
    private void KeyPairGen(string label, string id, int bits = 2048) =>
        Run("pkcs11-tool", "--module", Module, "--token-label", _token, "--login", "--pin", Pin,
            "--keypairgen", "--key-type", $"rsa:{bits}", "--label", label, "--id", id);

    // ---- wrap, unwrap, the recorded algorithm ----

    [Test]
    public void AKeyMadeWithPkcs11ToolWrapsAndUnwrapsWithOaepSha1OnSoftHsm()
    {
        KeyPairGen("kek1", "01");
        using var store = Open();
        var info = store.GetKey("kek1")!;
        Assert.That(info.State, Is.EqualTo(KeyState.Enabled));
        Assert.That(info.Bits, Is.EqualTo(2048));
        Assert.That(info.Versions.Select(v => v.Version), Is.EqualTo(new[] { "01" }));

        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = store.Wrap("kek1", "01", dek, out string algorithm);
        // SoftHSM2 2.6 decrypts OAEP with SHA-1 only (TESTING.md): the probe finds that and the slot records it.
        Assert.That(algorithm, Is.EqualTo("RSA-OAEP"));
        Assert.That(wrapped, Has.Length.EqualTo(256));
        using var back = store.Unwrap("kek1", "01", wrapped, algorithm);
        Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));

        var e = Assert.Throws<KeyStoreException>(() => store.Unwrap("kek1", "01", wrapped, "RSA-OAEP-256"))!;
        Assert.That(e.Message, Does.Contain("the token refuses RSA-OAEP-256").Or.Contain("cannot unwrap"));
        Assert.That(Assert.Throws<KeyStoreException>(() => store.Unwrap("kek1", "01", wrapped, "RSA1_5"))!.Message, Does.Contain("not RSA1_5"));
        Assert.That(store.CanUnwrap("RSA-OAEP") && store.CanUnwrap("RSA-OAEP-256") && !store.CanUnwrap("RSA1_5"));
    }

    [Test]
    public void WhatTheStoreWrapsAnIndependentRsaImplementationUnwraps()
    {
        // Imported from a PEM we keep, so .NET's own RSA (not the token) can check the wrapping.
        using var rsa = RSA.Create(2048);
        using (var store = Open())
            store.ImportKey("kek1", rsa.ExportPkcs8PrivateKeyPem());
        using var reopened = Open();
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = reopened.Wrap("kek1", "01", dek, out string algorithm);
        byte[] plain = rsa.Decrypt(wrapped, algorithm == "RSA-OAEP" ? RSAEncryptionPadding.OaepSHA1 : RSAEncryptionPadding.OaepSHA256);
        Assert.That(plain, Is.EqualTo(Bytes(dek)));

        // And the token unwraps what .NET wrapped with the public key.
        using var back = reopened.Unwrap("kek1", "01", rsa.Encrypt(Bytes(dek), RSAEncryptionPadding.OaepSHA1), "RSA-OAEP");
        Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));
    }

    [Test]
    public void TheKeyAgentRecordsTheAlgorithmTheTokenChoseAndNeedsAGrant()
    {
        KeyPairGen("kek1", "01");
        using var store = Open();
        using var platform = PlatformKeyStore.OpenOrCreate(Path.Combine(_dir, "keys", "platform.pem"), Path.Combine(_dir, "keys", "platform.secret"));
        var audit = AuditLog.Open(Path.Combine(_dir, "audit.log"));
        var agent = new KeyAgent(new Dictionary<string, IKeyStore> { ["hsm1"] = store }, platform, audit);
        using var dek = DataEncryptionKey.Generate();

        var denied = Assert.Throws<KeyStoreException>(() => agent.Wrap("encryption-set:des1", "hsm1", "kek1", null, dek, "disk1"))!;
        Assert.That(denied.Message, Does.Contain("managed-disks hsm --store hsm1 grant --key kek1 --identity encryption-set:des1"));

        store.Grant("kek1", "encryption-set:des1", KeyOperations.WrapKey | KeyOperations.UnwrapKey);
        var slot = agent.Wrap("encryption-set:des1", "hsm1", "kek1", null, dek, "disk1");
        Assert.That((slot.KeyStore, slot.KeyName, slot.KeyVersion, slot.WrapAlgorithm), Is.EqualTo(("hsm1", "kek1", "01", "RSA-OAEP")));
        using var back = agent.Unwrap("encryption-set:des1", slot, "disk1");
        Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));
    }

    [Test]
    public void TheSoftwareVaultStillRecordsRsaOaep256ThroughTheNewInterfaceMethods()
    {
        using IKeyStore vault = SoftwareVault.Open("vault1", Path.Combine(_dir, "vault"), Path.Combine(_dir, "vault.key"));
        var info = ((SoftwareVault)vault).CreateKey("kek1", 2048);
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = vault.Wrap("kek1", info.LatestVersion, dek, out string algorithm);
        Assert.That(algorithm, Is.EqualTo("RSA-OAEP-256"));
        using var back = vault.Unwrap("kek1", info.LatestVersion, wrapped, algorithm);
        Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));
        Assert.That(vault.CanUnwrap("RSA-OAEP"), Is.False);
        Assert.That(Assert.Throws<KeyStoreException>(() => vault.Unwrap("kek1", info.LatestVersion, wrapped, "RSA-OAEP"))!.Message, Does.Contain("does not unwrap RSA-OAEP"));
    }

    // ---- versions: CKA_ID ----

    [Test]
    public void VersionsAreCkaIdsAndTheHighestIsTheLatest()
    {
        KeyPairGen("kek1", "02");
        KeyPairGen("kek1", "0a");
        KeyPairGen("kek1", "09");
        using var store = Open();
        var info = store.GetKey("kek1")!;
        Assert.That(info.Versions.Select(v => v.Version), Is.EqualTo(new[] { "02", "09", "0a" }));
        Assert.That(info.LatestVersion, Is.EqualTo("0a"));

        var rotated = store.CreateKey("kek1", rotate: true);
        Assert.That(rotated.LatestVersion, Is.EqualTo("0b"));
        Assert.That(Assert.Throws<KeyStoreException>(() => store.CreateKey("kek1", 2048))!.Message, Does.Contain("already has a key 'kek1'").And.Contain("key rotate kek1"));
    }

    [Test]
    public void CreateKeyMakesASensitiveUnextractableKeyPairInTheToken()
    {
        using (var store = Open())
        {
            var info = store.CreateKey("kek2", 2048);
            Assert.That((info.LatestVersion, info.Bits, info.State), Is.EqualTo(("01", 2048, KeyState.Enabled)), store.Problem);
            Assert.That(Assert.Throws<KeyStoreException>(() => store.CreateKey("bad name", 2048))!.Message, Does.Contain("not a valid key name"));
            Assert.That(Assert.Throws<KeyStoreException>(() => store.CreateKey("kek3", 1024))!.Message, Does.Contain("RSA-1024 is not accepted"));
        }
        // The HSM's own tool sees it, private and sensitive.
        string objects = Run("pkcs11-tool", "--module", Module, "--token-label", _token, "--login", "--pin", Pin, "--list-objects", "--type", "privkey");
        Assert.That(objects, Does.Contain("label:      kek2").And.Contain("ID:         01").And.Contain("sensitive").And.Contain("never extractable"));
        Assert.That(objects, Does.Contain("decrypt"));
    }

    // ---- states ----

    [Test]
    public void AKeyDestroyedFromOutsideIsNotFound()
    {
        KeyPairGen("kek1", "01");
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped;
        using (var store = Open())
            wrapped = store.Wrap("kek1", "01", dek, out _);
        Run("pkcs11-tool", "--module", Module, "--token-label", _token, "--login", "--pin", Pin, "--delete-object", "--type", "privkey", "--label", "kek1");

        using var reopened = Open();
        Assert.That(reopened.GetKey("kek1"), Is.Null);
        Assert.That(Assert.Throws<KeyStoreException>(() => reopened.Unwrap("kek1", "01", wrapped, "RSA-OAEP"))!.Message, Does.Contain("has no key 'kek1'"));
    }

    [Test]
    public void CkaDecryptFalseIsDisabledAndTheTokenRefusesToUnwrap()
    {
        // pkcs11-tool cannot change CKA_DECRYPT; the store's admin API (`hsm key disable`) can.
        KeyPairGen("kek1", "01");
        using var store = Open();
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = store.Wrap("kek1", "01", dek, out string algorithm);
        Assert.That(store.SetEnabled("kek1", false).State, Is.EqualTo(KeyState.Disabled));
        using (var other = Open())
            Assert.That(other.GetKey("kek1")!.State, Is.EqualTo(KeyState.Disabled));
        Assert.That(Assert.Throws<KeyStoreException>(() => store.Unwrap("kek1", "01", wrapped, algorithm))!.Message, Does.Contain("CKA_DECRYPT is false").And.Contain("key enable kek1"));
        Assert.That(store.SetEnabled("kek1", true).State, Is.EqualTo(KeyState.Enabled));
        using var back = store.Unwrap("kek1", "01", wrapped, algorithm);
        Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));
    }

    [Test]
    public void APassedCkaEndDateIsExpiredAndAFutureCkaStartDateIsNotYetValid()
    {
        KeyPairGen("kek1", "01");
        using (var connection = new TokenConnection("hsm1", Options(), Pin.Select(c => (byte)c).ToArray()))
        {
            connection.Use(session =>
            {
                // On the public key object: SoftHSM2 2.6 cannot read dates of a private object back (CKR_GENERAL_ERROR).
                var f = session.Factories.ObjectAttributeFactory;
                var key = session.FindAllObjects([f.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), f.Create(CKA.CKA_LABEL, "kek1")])[0];
                session.SetAttributeValue(key, [f.Create(CKA.CKA_START_DATE, new DateTime(2030, 1, 1)), f.Create(CKA.CKA_END_DATE, new DateTime(2030, 12, 31))]);
                return 0;
            });
        }
        KeyState At(DateTimeOffset when)
        {
            using var store = Open(Options(time: new FixedTime(when)));
            return store.GetKey("kek1")!.State;
        }
        Assert.That(At(new DateTimeOffset(2029, 12, 31, 23, 0, 0, TimeSpan.Zero)), Is.EqualTo(KeyState.NotYetValid));
        Assert.That(At(new DateTimeOffset(2030, 12, 31, 23, 59, 0, TimeSpan.Zero)), Is.EqualTo(KeyState.Enabled), "valid through its end date");
        Assert.That(At(new DateTimeOffset(2031, 1, 1, 0, 0, 0, TimeSpan.Zero)), Is.EqualTo(KeyState.Expired));
    }

    [Test]
    public void AWrongPinIsAccessRevokedAndIsNotTriedAgain()
    {
        KeyPairGen("kek1", "01");
        string wrong = Path.Combine(_dir, "wrong-pin");
        File.WriteAllText(wrong, "9999");
        using (var store = Open(Options(pinFile: wrong)))
        {
            var info = store.GetKey("kek1")!;
            Assert.That(info.State, Is.EqualTo(KeyState.AccessRevoked));
            Assert.That(info.Versions, Is.Empty);
            Assert.That(info.LatestVersion, Is.Empty);
            using var dek = DataEncryptionKey.Generate();
            Assert.That(Assert.Throws<KeyStoreException>(() => store.Wrap("kek1", "01", dek, out _))!.Message, Does.Contain("refused the user PIN").And.Contain(wrong));
        }
        using (var again = Open(Options(pinFile: wrong)))
        {
            using var dek = DataEncryptionKey.Generate();
            Assert.That(Assert.Throws<KeyStoreException>(() => again.Wrap("kek1", "01", dek, out _))!.Message, Does.Contain("not tried again until pin_file changes"));
        }
        using (var missing = Open(Options(pinFile: Path.Combine(_dir, "no-such-pin"))))
            Assert.That(missing.GetKey("kek1")!.State, Is.EqualTo(KeyState.AccessRevoked));
        using (var right = Open())
            Assert.That(right.GetKey("kek1")!.State, Is.EqualTo(KeyState.Enabled));
    }

    [Test]
    public void AMissingModuleOrAbsentTokenIsUnreachableNotRevoked()
    {
        using (var store = Open(Options(module: Path.Combine(_dir, "no-such-module.so"))))
        {
            Assert.That(store.GetKey("kek1")!.State, Is.EqualTo(KeyState.Unreachable));
            using var dek = DataEncryptionKey.Generate();
            Assert.That(Assert.Throws<KeyStoreException>(() => store.Wrap("kek1", "01", dek, out _))!.Message, Does.Contain("does not exist"));
        }
        using (var store = Open(Options(token: "no-such-token")))
        {
            Assert.That(store.GetKey("kek1")!.State, Is.EqualTo(KeyState.Unreachable));
            Assert.That(Assert.Throws<KeyStoreException>(() => store.ListKeys())!.Message, Does.Contain("'no-such-token' is not present").And.Contain(_token));
        }
    }

    [Test]
    public void ATokenThatGoesAwayAndComesBackIsPickedUpAgain()
    {
        KeyPairGen("kek1", "01");
        string tokens = Path.Combine(s_root, "tokens"), away = Path.Combine(s_root, "away");
        string folder = Directory.GetDirectories(tokens).Single(d => File.ReadAllText(Path.Combine(d, "token.object"), System.Text.Encoding.Latin1).Contains(_token));
        using (var store = Open())
        {
            Assert.That(store.GetKey("kek1")!.State, Is.EqualTo(KeyState.Enabled));
            Directory.CreateDirectory(away);
            Directory.Move(folder, Path.Combine(away, Path.GetFileName(folder)));
            try
            {
                Assert.That(store.GetKey("kek1")?.State, Is.Not.EqualTo(KeyState.Enabled), "a token whose files are gone must not look usable");
            }
            finally
            {
                Directory.Move(Path.Combine(away, Path.GetFileName(folder)), folder);
            }
        }
        // The next store (the daemon opens them per piece of work) initialises the module afresh and finds it.
        using var reopened = Open();
        Assert.That(reopened.GetKey("kek1")?.State, Is.EqualTo(KeyState.Enabled), reopened.Problem);
    }

    [Test]
    public void SessionsArePooledAcrossThreads()
    {
        KeyPairGen("kek1", "01");
        using var store = Open();
        using var dek = DataEncryptionKey.Generate();
        byte[] wrapped = store.Wrap("kek1", "01", dek, out string algorithm);
        Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            using var back = store.Unwrap("kek1", "01", wrapped, algorithm);
            Assert.That(Bytes(back), Is.EqualTo(Bytes(dek)));
        });
    }

    // ---- grants ----

    [Test]
    public void GrantsAreKeptInTheGrantsFileAndSurviveReopening()
    {
        KeyPairGen("kek1", "01");
        using (var store = Open())
        {
            Assert.That(store.GetKey("kek1")!.Grants, Is.Empty);
            store.Grant("kek1", "encryption-set:des1", KeyOperations.WrapKey | KeyOperations.UnwrapKey);
            Assert.That(Assert.Throws<KeyStoreException>(() => store.Grant("nope", "encryption-set:des1", KeyOperations.WrapKey))!.Message, Does.Contain("has no key 'nope'"));
            Assert.That(File.GetUnixFileMode(store.GrantsPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        }
        using var reopened = Open();
        Assert.That(reopened.GetKey("kek1")!.Grants["encryption-set:des1"], Is.EqualTo(KeyOperations.WrapKey | KeyOperations.UnwrapKey));
        reopened.Revoke("kek1", "encryption-set:des1");
        Assert.That(reopened.GetKey("kek1")!.Grants, Is.Empty);
        Assert.That(Assert.Throws<KeyStoreException>(() => reopened.Revoke("kek1", "encryption-set:des1"))!.Message, Does.Contain("has no grant"));
    }

    // ---- configuration ----

    [Test]
    public void ConfigAcceptsAPkcs11StoreAndReportsEachMistakeWithItsLine()
    {
        var settings = ManagedDisks.Daemon.Configuration.ConfigLoader.Load($"""
            [daemon]
            state_dir = "/srv/md"

            [[key_store]]
            name = "hsm1"
            type = "pkcs11"
            module = "{Module}"
            token_label = "disks"
            pin_file = "hsm.pin"
            """, "x.toml", "/etc/md");
        var store = settings.KeyStores.Single();
        Assert.That((store.Type, store.Module, store.TokenLabel, store.PinFile, store.GrantsFile),
            Is.EqualTo(("pkcs11", Module, "disks", "/etc/md/hsm.pin", "/srv/md/pkcs11/hsm1.grants.json")));

        var e = Assert.Throws<ManagedDisks.Daemon.Configuration.ConfigException>(() => ManagedDisks.Daemon.Configuration.ConfigLoader.Load("""
            [[key_store]]
            name = "hsm1"
            type = "pkcs11"
            module = "/no/such/module.so"
            token_label = "disks"
            slot = 3
            master_key_file = "x"
            """, "x.toml", "/etc/md"))!;
        Assert.That(e.Message, Does.Contain("x.toml:4: ").And.Contain("module /no/such/module.so does not exist"));
        Assert.That(e.Message, Does.Contain("x.toml:6: ").And.Contain("give token_label or slot, not both"));
        Assert.That(e.Message, Does.Contain("x.toml:7: ").And.Contain("master_key_file belongs to type = \"software\""));
        Assert.That(e.Message, Does.Contain("x.toml:3: ").And.Contain("pin_file is missing"));
    }

    // ---- helpers ----

    private static byte[] Bytes(DataEncryptionKey dek) => dek.UseKey(0, static (key, _) => key.ToArray());

    private static string Run(string tool, params string[] arguments)
    {
        var info = new ProcessStartInfo("/usr/bin/" + tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in arguments) info.ArgumentList.Add(a);
        info.Environment["SOFTHSM2_CONF"] = Path.Combine(s_root, "softhsm2.conf");
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, $"{tool} {string.Join(' ', arguments)}:\n{stdout}\n{stderr.Result}");
        return stdout + stderr.Result;
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
