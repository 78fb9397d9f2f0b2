using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// <c>managed-disks vault ...</c> as an administrator runs it: the real executable, a real
/// disks.toml, no daemon. Checks output, exit codes, error messages and the audit log.
/// </summary>
public class VaultCliTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");
    private string _work = null!;
    private string _config = null!;

    private string StateDir => Path.Combine(_work, "state");

    [SetUp]
    public void SetUp()
    {
        _work = DaemonProcess.NewWorkDir();
        _config = WriteConfig("disks.toml", "vault1");
    }

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string WriteConfig(string fileName, params string[] stores)
    {
        string path = Path.Combine(_work, fileName);
        File.WriteAllText(path, $"[daemon]\nstate_dir = \"{StateDir}\"\n\n" +
            string.Concat(stores.Select(s => $"[[key_store]]\nname = \"{s}\"\ntype = \"software\"\n\n")));
        return path;
    }

    private Task<ToolResult> VaultAsync(params string[] arguments) => VaultWithAsync(_config, arguments);

    private static Task<ToolResult> VaultWithAsync(string config, params string[] arguments) =>
        Tool.RunAsync("dotnet", [Cli, "vault", "--config", config, .. arguments]);

    private async Task<ToolResult> VaultOkAsync(params string[] arguments)
    {
        var result = await VaultAsync(arguments);
        Assert.That(result.ExitCode, Is.Zero, $"vault {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    private async Task<JsonElement> KeyListAsync()
    {
        var result = await VaultOkAsync("key", "list", "--json");
        return JsonDocument.Parse(result.StdOut).RootElement;
    }

    private List<JsonElement> AuditLines() =>
        File.ReadLines(Path.Combine(StateDir, "audit.log")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Test]
    public async Task AKeyLivesThroughTheCliAndEveryChangeIsAudited()
    {
        var created = await VaultOkAsync("--store", "vault1", "key", "create", "kek1", "--size", "2048");
        Assert.That(created.StdOut, Does.Contain("created key 'kek1'").And.Contain("RSA-2048"));
        await VaultOkAsync("key", "rotate", "kek1"); // --store is optional: one store is declared
        await VaultOkAsync("grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "get,wrapKey,unwrapKey");
        await VaultOkAsync("key", "set-expiry", "kek1", "--expires", "2099-01-31T00:00:00Z", "--not-before", "2020-01-01");

        var keys = await KeyListAsync();
        Assert.That(keys.GetArrayLength(), Is.EqualTo(1));
        var key = keys[0];
        Assert.That(key.GetProperty("name").GetString(), Is.EqualTo("kek1"));
        Assert.That(key.GetProperty("state").GetString(), Is.EqualTo("enabled"));
        Assert.That(key.GetProperty("bits").GetInt32(), Is.EqualTo(2048));
        var versions = key.GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetString()).ToList();
        Assert.That(versions, Has.Count.EqualTo(2));
        Assert.That(key.GetProperty("latest_version").GetString(), Is.EqualTo(versions[1]).And.Match("^[0-9a-f]{32}$"));
        Assert.That(DateTimeOffset.Parse(key.GetProperty("expires").GetString()!), Is.EqualTo(new DateTimeOffset(2099, 1, 31, 0, 0, 0, TimeSpan.Zero)));
        Assert.That(key.GetProperty("grants").GetProperty("encryption-set:des1").EnumerateArray().Select(o => o.GetString()),
            Is.EqualTo(new[] { "get", "wrapKey", "unwrapKey" }));

        var text = await VaultOkAsync("key", "list");
        Assert.That(text.StdOut, Does.Contain("kek1").And.Contain("enabled").And.Contain("encryption-set:des1=get,wrapKey,unwrapKey"));

        await VaultOkAsync("key", "disable", "kek1");
        Assert.That((await KeyListAsync())[0].GetProperty("state").GetString(), Is.EqualTo("disabled"));
        await VaultOkAsync("key", "enable", "kek1");
        await VaultOkAsync("revoke", "--key", "kek1", "--identity", "encryption-set:des1");
        var deleted = await VaultOkAsync("key", "delete", "kek1");
        Assert.That(deleted.StdOut, Does.Contain("key recover kek1"));
        var shown = JsonDocument.Parse((await VaultOkAsync("key", "show", "kek1", "--json")).StdOut).RootElement;
        Assert.That(shown.GetProperty("state").GetString(), Is.EqualTo("deleted"));
        Assert.That(shown.GetProperty("purge_after").GetString(), Is.Not.Null);
        await VaultOkAsync("key", "recover", "kek1");
        Assert.That((await KeyListAsync())[0].GetProperty("state").GetString(), Is.EqualTo("enabled"));

        var audit = AuditLines();
        Assert.That(audit.Select(a => a.GetProperty("operation").GetString()), Is.EqualTo(new[]
        {
            "key.create", "key.rotate", "grant", "key.set-expiry", "key.disable", "key.enable", "revoke", "key.delete", "key.recover",
        }));
        Assert.That(audit.Select(a => a.GetProperty("result").GetString()), Is.All.EqualTo("ok"));
        Assert.That(audit.Select(a => a.GetProperty("identity").GetString()), Is.All.EqualTo("admin:" + Environment.UserName));
        Assert.That(audit.Select(a => a.GetProperty("key_store").GetString()), Is.All.EqualTo("vault1"));
        Assert.That(audit[1].GetProperty("key_version").GetString(), Is.EqualTo(versions[1]), "a rotation records the new version");
        Assert.That(audit[2].GetProperty("detail").GetString(), Does.Contain("encryption-set:des1").And.Contain("get,wrapKey,unwrapKey"));
    }

    [Test]
    public async Task ImportsPemsIncludingAnEncryptedOneWithAPassphraseFile()
    {
        string pkcs1 = Path.Combine(_work, "k.pem"), encrypted = Path.Combine(_work, "k.enc.pem"), pass = Path.Combine(_work, "pass");
        await File.WriteAllTextAsync(pass, "open sesame\n");
        await Tool.RunOkAsync("openssl", "genrsa", "-traditional", "-out", pkcs1, "2048");
        await Tool.RunOkAsync("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", pkcs1, "-out", encrypted, "-passout", $"file:{pass}");

        await VaultOkAsync("key", "import", "plain", "--pem", pkcs1);
        var missing = await VaultAsync("key", "import", "enc", "--pem", encrypted);
        Assert.That(missing.ExitCode, Is.EqualTo(1), missing.ToString());
        Assert.That(missing.StdErr, Does.Contain("give its passphrase with --passphrase-file"));
        var imported = await VaultOkAsync("key", "import", "enc", "--pem", encrypted, "--passphrase-file", pass);
        Assert.That(imported.StdOut, Does.Contain("imported key 'enc'"));

        var keys = await KeyListAsync();
        Assert.That(keys.EnumerateArray().Select(k => k.GetProperty("name").GetString()), Is.EqualTo(new[] { "enc", "plain" }));
        var notPem = await VaultAsync("key", "import", "x", "--pem", pass);
        Assert.That(notPem.ExitCode, Is.EqualTo(1), notPem.ToString());
        Assert.That(notPem.StdErr, Does.Contain("no PEM block"));
    }

    [Test]
    public async Task ErrorsSayWhatToDoWithExitCodeOne()
    {
        await VaultOkAsync("key", "create", "kek1", "--size", "2048");

        var unknownKey = await VaultAsync("key", "rotate", "nope");
        Assert.That(unknownKey.ExitCode, Is.EqualTo(1), unknownKey.ToString());
        Assert.That(unknownKey.StdErr, Does.Contain("has no key 'nope' (keys: kek1)").And.Contain("key create nope"));

        var unknownShow = await VaultAsync("key", "show", "nope");
        Assert.That(unknownShow.ExitCode, Is.EqualTo(1), unknownShow.ToString());
        Assert.That(unknownShow.StdErr, Does.Contain("has no key 'nope'"));

        var unknownStore = await VaultAsync("--store", "nope", "key", "list");
        Assert.That(unknownStore.ExitCode, Is.EqualTo(1), unknownStore.ToString());
        Assert.That(unknownStore.StdErr, Does.Contain("no key store named 'nope'").And.Contain("it declares: vault1"));

        var badOps = await VaultAsync("grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "get,bogus");
        Assert.That(badOps.ExitCode, Is.EqualTo(1), badOps.ToString());
        Assert.That(badOps.StdErr, Does.Contain("'bogus' is not a key operation; use a comma-separated list of get, wrapKey, unwrapKey"));

        var badDate = await VaultAsync("key", "set-expiry", "kek1", "--expires", "next tuesday");
        Assert.That(badDate.ExitCode, Is.EqualTo(1), badDate.ToString());
        Assert.That(badDate.StdErr, Does.Contain("is not an ISO 8601 date"));

        await VaultOkAsync("key", "delete", "kek1");
        var purge = await VaultAsync("key", "purge", "kek1");
        Assert.That(purge.ExitCode, Is.EqualTo(1), purge.ToString());
        Assert.That(purge.StdErr, Does.Contain("purge protection").And.Contain("key recover kek1"));
        Assert.That((await KeyListAsync())[0].GetProperty("state").GetString(), Is.EqualTo("deleted"), "nothing was purged");

        var audit = AuditLines();
        var rotate = audit.Single(a => a.GetProperty("operation").GetString() == "key.rotate");
        Assert.That(rotate.GetProperty("result").GetString(), Does.StartWith("error: ").And.Contain("has no key 'nope'"));
        var purged = audit.Single(a => a.GetProperty("operation").GetString() == "key.purge");
        Assert.That(purged.GetProperty("result").GetString(), Is.EqualTo("denied"));
        Assert.That(audit.Select(a => a.GetProperty("operation").GetString()), Has.None.EqualTo("grant"), "a malformed command changes nothing and is not a vault event");
    }

    [Test]
    public async Task StoreIsRequiredOnlyWhenSeveralAreDeclared()
    {
        string two = WriteConfig("two.toml", "vault1", "vault2");
        var ambiguous = await VaultWithAsync(two, "key", "list");
        Assert.That(ambiguous.ExitCode, Is.EqualTo(1), ambiguous.ToString());
        Assert.That(ambiguous.StdErr, Does.Contain("choose one with --store NAME").And.Contain("vault1, vault2"));

        var chosen = await VaultWithAsync(two, "--store", "vault2", "key", "create", "k2", "--size", "2048");
        Assert.That(chosen.ExitCode, Is.Zero, chosen.ToString());
        Assert.That(Directory.Exists(Path.Combine(StateDir, "vaults", "vault2")), Is.True);

        string none = WriteConfig("none.toml");
        var noStore = await VaultWithAsync(none, "key", "list");
        Assert.That(noStore.ExitCode, Is.EqualTo(1), noStore.ToString());
        Assert.That(noStore.StdErr, Does.Contain("declares no [[key_store]]"));
    }

    [Test]
    public async Task ABadConfigurationExitsWithTwo()
    {
        string bad = Path.Combine(_work, "bad.toml");
        await File.WriteAllTextAsync(bad, "[[key_store]]\nname = \"platform\"\n");
        var result = await VaultWithAsync(bad, "key", "list");
        Assert.That(result.ExitCode, Is.EqualTo(2), result.ToString());
        Assert.That(result.StdErr, Does.Contain("[[key_store]]"));

        var missing = await VaultWithAsync(Path.Combine(_work, "missing.toml"), "key", "list");
        Assert.That(missing.ExitCode, Is.EqualTo(2), missing.ToString());
    }

    [Test]
    public async Task AWrongMasterKeyIsRefusedAndAudited()
    {
        await VaultOkAsync("key", "create", "kek1", "--size", "2048");
        string masterKey = Path.Combine(StateDir, "vaults", "vault1.master-key");
        Assert.That(new FileInfo(masterKey).Length, Is.EqualTo(32));
        Assert.That(File.GetUnixFileMode(masterKey), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        await File.WriteAllBytesAsync(masterKey, new byte[32]);

        var result = await VaultAsync("key", "rotate", "kek1");
        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString());
        Assert.That(result.StdErr, Does.Contain("is not the one this vault").And.Contain("restore the original master key"));
        Assert.That(AuditLines()[^1].GetProperty("result").GetString(), Does.StartWith("error: "));
    }
}
