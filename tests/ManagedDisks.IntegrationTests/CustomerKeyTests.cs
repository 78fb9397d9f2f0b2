using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Customer-managed keys end to end through the real CLI and daemon: a vault key wraps a disk's
/// DEK for an encryption set's identity, grants gate it, and every use is in a verifiable audit log.
/// </summary>
[NonParallelizable]
public class CustomerKeyTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    private sealed record Setup(string WorkDir, string StateDir, string Config);

    private static Setup NewSetup(string disks)
    {
        string work = DaemonProcess.NewWorkDir();
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        File.WriteAllText(config, DaemonProcess.Config(state, ManagedDisksCli.VaultAndSet() + disks));
        return new Setup(work, state, config);
    }

    private static Task<ToolResult> CliAsync(Setup s, params string[] arguments) => new ManagedDisksCli(s.Config).RunAsync(arguments);

    private static async Task<ToolResult> CliOkAsync(Setup s, params string[] arguments)
    {
        var result = await CliAsync(s, arguments);
        Assert.That(result.ExitCode, Is.Zero, $"managed-disks {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    private static Task<DaemonProcess> StartAsync(Setup s) => DaemonProcess.StartAsync(["serve", "--config", s.Config], s.WorkDir, s.StateDir);

    [Test]
    public async Task ImportedPemKeyWrapsTheDiskAndOpensslUnwrapsIt()
    {
        var s = NewSetup(DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        string pem = Path.Combine(s.WorkDir, "kek1.pem");
        await Tool.RunOkAsync("openssl", "genrsa", "-out", pem, "3072");
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "import", "kek1", "--pem", pem);

        var set = JsonDocument.Parse((await CliOkAsync(s, "set", "show", "des1", "--json")).StdOut).RootElement;
        string identity = set.GetProperty("identity").GetString()!;
        Assert.That(set.GetProperty("grant_missing").GetString(), Does.Contain($"--identity {identity}"));
        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", identity, "--ops", "wrapKey,unwrapKey");

        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5e 0 64k", d.Uri("disk1"));

        var show = JsonDocument.Parse((await CliOkAsync(s, "disk", "show", "disk1", "--json")).StdOut).RootElement;
        var slot = show.GetProperty("key_slots")[0];
        Assert.That(slot.GetProperty("key_store").GetString(), Is.EqualTo("vault1"));
        Assert.That(slot.GetProperty("key_name").GetString(), Is.EqualTo("kek1"));
        Assert.That(slot.GetProperty("wrap_algorithm").GetString(), Is.EqualTo("RSA-OAEP-256"));

        // None of our code from here on: openssl unwraps with the PEM, python3-cryptography decrypts.
        string wrapped = Path.Combine(s.WorkDir, "wrapped.bin"), dek = Path.Combine(s.WorkDir, "dek.bin");
        await File.WriteAllBytesAsync(wrapped, Convert.FromBase64String(slot.GetProperty("wrapped_dek").GetString()!));
        await Tool.RunOkAsync("openssl", "pkeyutl", "-decrypt", "-inkey", pem, "-pkeyopt", "rsa_padding_mode:oaep",
            "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-in", wrapped, "-out", dek);
        string script = Path.Combine(s.WorkDir, "decrypt.py");
        await File.WriteAllTextAsync(script, """
            import sys
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            dek = open(sys.argv[1], 'rb').read()
            with open(sys.argv[2], 'rb') as f:
                f.seek(int(sys.argv[3])); ct = f.read(4096)
            d = Cipher(algorithms.AES(dek), modes.XTS((0).to_bytes(16, 'little'))).decryptor()
            assert d.update(ct) + d.finalize() == b'\x5e' * 4096
            print('decrypted ok')
            """);
        var result = await Tool.RunAsync("python3", [script, dek, Path.Combine(s.StateDir, "disks", "disk1.img"), show.GetProperty("payload_offset").ToString()]);
        Assert.That(result.StdOut, Does.Contain("decrypted ok"), result.ToString());
    }

    [Test]
    public async Task WithoutAGrantTheDiskIsRefusedWithTheGrantToGive()
    {
        var s = NewSetup(DaemonProcess.Disk("plain", "8M") + DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1", "--size", "2048");

        await using (var d = await StartAsync(s))
        {
            Assert.That(d.Output, Does.Contain("Disk 'disk1' is not served").And.Contain("grant --key kek1 --identity encryption-set:des1"));
            await Tool.RunOkAsync("nbdinfo", "--size", d.Uri("plain"));
        }
        Assert.That(File.Exists(Path.Combine(s.StateDir, "disks", "disk1.img")), Is.False, "no disk may be created without its key");

        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x1 0 4k", "-c", "read -P 0x1 0 4k", d.Uri("disk1"));

        // A disabled key stops the disk from opening, with the command that fixes it.
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "disable", "kek1");
        await using (var d = await StartAsync(s))
            Assert.That(d.Output, Does.Contain("is disabled").And.Contain("key enable kek1"));
    }

    [Test]
    public async Task ADiskMovesFromThePlatformKeyToASetWithoutReencrypting()
    {
        var s = NewSetup(DaemonProcess.Disk("disk1", "8M"));
        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x7a 0 1M", d.Uri("disk1"));
        var before = JsonDocument.Parse((await CliOkAsync(s, "disk", "show", "disk1", "--json")).StdOut).RootElement;
        Assert.That(before.GetProperty("key_slots")[0].GetProperty("key_store").GetString(), Is.EqualTo("platform"));

        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1");
        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await File.WriteAllTextAsync(s.Config, (await File.ReadAllTextAsync(s.Config)).Replace("size = \"8M\"", "size = \"8M\"\nencryption_set = \"des1\""));

        await using (var d = await StartAsync(s))
        {
            await d.WaitForLogAsync("moved from key platform/platform-key to vault1/kek1");
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x7a 0 1M", d.Uri("disk1"));
        }
        var after = JsonDocument.Parse((await CliOkAsync(s, "disk", "show", "disk1", "--json")).StdOut).RootElement;
        Assert.That(after.GetProperty("key_slots")[0].GetProperty("key_name").GetString(), Is.EqualTo("kek1"));
        Assert.That(after.GetProperty("uuid").GetString(), Is.EqualTo(before.GetProperty("uuid").GetString()));
        Assert.That(after.GetProperty("header_sequence").GetInt64(), Is.EqualTo(before.GetProperty("header_sequence").GetInt64() + 1));
    }

    [Test]
    public async Task EveryKeyUseIsAuditedAndTamperingIsDetected()
    {
        var s = NewSetup(DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1");
        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await using (await StartAsync(s)) { }
        await using (await StartAsync(s)) { }

        var lines = (await CliOkAsync(s, "audit", "--json")).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var operations = lines.Select(l => l.GetProperty("operation").GetString()).ToList();
        Assert.That(operations, Does.Contain("wrapKey").And.Contain("unwrapKey").And.Contain("grant"));
        var wrap = lines.First(l => l.GetProperty("operation").GetString() == "wrapKey");
        Assert.That(wrap.GetProperty("identity").GetString(), Is.EqualTo("encryption-set:des1"));
        Assert.That(wrap.GetProperty("disk").GetString(), Is.EqualTo("disk1"));
        Assert.That(wrap.GetProperty("key").GetString(), Is.EqualTo("kek1"));
        Assert.That(wrap.GetProperty("result").GetString(), Is.EqualTo("ok"));
        Assert.That((await CliOkAsync(s, "audit", "verify")).StdOut, Does.Contain($"intact: {lines.Count} records"));

        string log = Path.Combine(s.StateDir, "audit.log");
        string[] original = await File.ReadAllLinesAsync(log);
        async Task ExpectTampered(string[] edited, string because)
        {
            await File.WriteAllLinesAsync(log, edited);
            var verify = await CliAsync(s, "audit", "verify");
            Assert.That(verify.ExitCode, Is.EqualTo(1), because);
            Assert.That(verify.StdErr, Does.Contain("tampered"), because);
        }
        await ExpectTampered(original.Select((l, i) => i == 1 ? l.Replace("\"ok\"", "\"denied\"") : l).ToArray(), "an edited line");
        await ExpectTampered(original.Where((_, i) => i != 1).ToArray(), "a deleted line");
        await ExpectTampered(original[..^1], "a line cut off the end");
        await ExpectTampered([original[0], original[2], original[1], .. original[3..]], "reordered lines");
        await File.WriteAllLinesAsync(log, original);
        await CliOkAsync(s, "audit", "verify");
    }

    [Test]
    public async Task AnExpiredKeyIsRefusedWithTheCommandThatExtendsIt()
    {
        var s = NewSetup(DaemonProcess.Disk("plain", "8M") + DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1", "--size", "2048");
        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x44 0 64k", d.Uri("disk1"));

        await CliOkAsync(s, "vault", "--store", "vault1", "key", "set-expiry", "kek1", "--expires", DateTimeOffset.UtcNow.AddMinutes(-1).ToString("O"));
        await using (var d = await StartAsync(s))
            Assert.That(d.Output, Does.Contain("Disk 'disk1' is not served").And.Contain("is expired").And.Contain("key set-expiry kek1"));

        await CliOkAsync(s, "vault", "--store", "vault1", "key", "set-expiry", "kek1", "--expires", "none");
        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x44 0 64k", d.Uri("disk1"));
        var audit = (await CliOkAsync(s, "audit", "--json")).StdOut;
        Assert.That(audit, Does.Contain("\"denied\""), "the refused unwrap is audited");
    }

    [Test]
    public async Task AVaultLockedByAnotherAdminIsReportedAndNothingIsLost()
    {
        var s = NewSetup(DaemonProcess.Disk("disk1", "8M"));
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1", "--size", "2048");
        string lockFile = Directory.GetFiles(Path.Combine(s.StateDir, "vaults", "vault1"), "*.lock").Single();

        // Another admin holds the vault's lock (python's flock, independent of our code).
        string holder = Path.Combine(s.WorkDir, "hold.py");
        await File.WriteAllTextAsync(holder, "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n");
        var info = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", [holder, lockFile]) { RedirectStandardInput = true, RedirectStandardOutput = true };
        using var hold = System.Diagnostics.Process.Start(info)!;
        Assert.That(await hold.StandardOutput.ReadLineAsync(), Is.EqualTo("locked"));

        var blocked = await CliAsync(s, "vault", "--store", "vault1", "key", "rotate", "kek1");
        Assert.That(blocked.ExitCode, Is.EqualTo(1), blocked.ToString());
        Assert.That(blocked.StdErr, Does.Contain("busy"));

        hold.StandardInput.Close();
        await hold.WaitForExitAsync();
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "rotate", "kek1");
        var key = JsonDocument.Parse((await CliOkAsync(s, "vault", "--store", "vault1", "key", "show", "kek1", "--json")).StdOut).RootElement;
        Assert.That(key.GetProperty("versions").GetArrayLength(), Is.EqualTo(2), "the first version survives and the retried rotation added one");
    }

    [Test]
    public async Task AGrantGivenWhileTheDaemonRunsOpensTheDiskWithinThePollInterval()
    {
        var s = NewSetup(DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        await File.WriteAllTextAsync(s.Config, (await File.ReadAllTextAsync(s.Config)) + "\n[timers]\nkey_poll_interval = \"1s\"\n");
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1", "--size", "2048");

        // Its only disk waits for a key, so the daemon waits too instead of exiting.
        await using var d = await StartAsync(s);
        Assert.That(d.Output, Does.Contain("Disk 'disk1' is not served"));
        Assert.That((await Tool.RunAsync("nbdinfo", ["--size", d.Uri("disk1")])).ExitCode, Is.Not.Zero);

        await CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await d.WaitForLogAsync("Disk 'disk1' is served now");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3 0 4k", "-c", "read -P 0x3 0 4k", d.Uri("disk1"));
    }
}
