using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// A PKCS#11 key store end to end: a SoftHSM2 token in a temporary folder, keys made by
/// `managed-disks hsm key create` and by the HSM's own pkcs11-tool, the real daemon serving
/// disks whose DEKs the token unwraps. Skipped when SoftHSM2 or pkcs11-tool is missing.
/// </summary>
[NonParallelizable]
public class Pkcs11Tests
{
    private const string Module = "/usr/lib/softhsm/libsofthsm2.so";
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    private sealed record Setup(string WorkDir, string StateDir, string Config, Dictionary<string, string> Environment);

    private static async Task<Setup> NewSetupAsync(string disks)
    {
        if (!File.Exists(Module)) Assert.Ignore("SoftHSM2 is not installed (apt-get install softhsm2 opensc)");
        Tool.Require("pkcs11-tool");
        Tool.Require("softhsm2-util");
        string work = DaemonProcess.NewWorkDir();
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        Directory.CreateDirectory(Path.Combine(work, "tokens"));
        string softhsmConf = Path.Combine(work, "softhsm2.conf");
        await File.WriteAllTextAsync(softhsmConf, $"directories.tokendir = {work}/tokens\n");
        var environment = new Dictionary<string, string> { ["SOFTHSM2_CONF"] = softhsmConf };
        var init = await Tool.RunAsync("softhsm2-util", ["--init-token", "--free", "--label", "disks", "--pin", "1234", "--so-pin", "5678"], environment);
        Assert.That(init.ExitCode, Is.Zero, init.ToString());
        await File.WriteAllTextAsync(Path.Combine(work, "hsm.pin"), "1234\n");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state, $$"""
            [[key_store]]
            name = "hsm1"
            type = "pkcs11"
            module = "{{Module}}"
            token_label = "disks"
            pin_file = "hsm.pin"

            [[encryption_set]]
            name = "des1"
            key_store = "hsm1"
            key = "kek1"

            [[encryption_set]]
            name = "des2"
            key_store = "hsm1"
            key = "kek2"

            """ + disks));
        return new Setup(work, state, config, environment);
    }

    private static async Task<ToolResult> CliOkAsync(Setup s, params string[] arguments)
    {
        var result = await Tool.RunAsync("dotnet", [Cli, .. arguments, "--config", s.Config], s.Environment);
        Assert.That(result.ExitCode, Is.Zero, $"managed-disks {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    private static Task<DaemonProcess> StartAsync(Setup s) =>
        DaemonProcess.StartAsync(["serve", "--config", s.Config], s.WorkDir, s.StateDir, environment: s.Environment);

    [Test]
    public async Task KeysFromHsmKeyCreateAndFromPkcs11ToolBothServeDisks()
    {
        var s = await NewSetupAsync(DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\"") + DaemonProcess.Disk("disk2", "8M", "encryption_set = \"des2\""));
        await CliOkAsync(s, "hsm", "--store", "hsm1", "key", "create", "kek1", "--size", "2048");
        var made = await Tool.RunAsync("pkcs11-tool", ["--module", Module, "--token-label", "disks", "--login", "--pin", "1234",
            "--keypairgen", "--key-type", "rsa:2048", "--label", "kek2", "--id", "01"], s.Environment);
        Assert.That(made.ExitCode, Is.Zero, made.ToString());

        var list = JsonDocument.Parse((await CliOkAsync(s, "hsm", "key", "list", "--json")).StdOut).RootElement;
        Assert.That(list.EnumerateArray().Select(k => (k.GetProperty("name").GetString(), k.GetProperty("latest_version").GetString(), k.GetProperty("state").GetString())),
            Is.EquivalentTo(new[] { ("kek1", "01", "enabled"), ("kek2", "01", "enabled") }));

        var set = JsonDocument.Parse((await CliOkAsync(s, "set", "show", "des1", "--json")).StdOut).RootElement;
        Assert.That(set.GetProperty("grant_missing").GetString(), Does.StartWith("managed-disks hsm --store hsm1 grant --key kek1"));
        await CliOkAsync(s, "hsm", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await CliOkAsync(s, "hsm", "grant", "--key", "kek2", "--identity", "encryption-set:des2", "--ops", "wrapKey,unwrapKey");

        await using (var d = await StartAsync(s))
        {
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5e 0 64k", d.Uri("disk1"));
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x6f 0 64k", d.Uri("disk2"));
        }
        // A second start unwraps the DEKs in the token and reads back what was written.
        await using (var d = await StartAsync(s))
        {
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x5e 0 64k", d.Uri("disk1"));
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x6f 0 64k", d.Uri("disk2"));
        }

        foreach (var (disk, key) in new[] { ("disk1", "kek1"), ("disk2", "kek2") })
        {
            var slot = JsonDocument.Parse((await CliOkAsync(s, "disk", "show", disk, "--json")).StdOut).RootElement.GetProperty("key_slots")[0];
            Assert.That(slot.GetProperty("key_store").GetString(), Is.EqualTo("hsm1"));
            Assert.That(slot.GetProperty("key_name").GetString(), Is.EqualTo(key));
            Assert.That(slot.GetProperty("key_version").GetString(), Is.EqualTo("01"));
            // SoftHSM2 2.6 decrypts OAEP with SHA-1 only: the slot records what was used.
            Assert.That(slot.GetProperty("wrap_algorithm").GetString(), Is.EqualTo("RSA-OAEP"));
        }

        var audit = (await CliOkAsync(s, "audit", "--json")).StdOut;
        Assert.That(audit, Does.Contain("\"key.create\"").And.Contain("\"unwrapKey\""));
    }

    [Test]
    public async Task ADisabledOrDestroyedKeyStopsTheDiskWithTheRemedy()
    {
        var s = await NewSetupAsync(DaemonProcess.Disk("plain", "8M") + DaemonProcess.Disk("disk1", "8M", "encryption_set = \"des1\""));
        await CliOkAsync(s, "hsm", "key", "create", "kek1", "--size", "2048");
        await CliOkAsync(s, "hsm", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        await using (var d = await StartAsync(s))
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x1 0 4k", d.Uri("disk1"));

        await CliOkAsync(s, "hsm", "key", "disable", "kek1");
        await using (var d = await StartAsync(s))
        {
            Assert.That(d.Output, Does.Contain("is disabled").And.Contain("managed-disks hsm --store hsm1 key enable kek1"));
            await Tool.RunOkAsync("nbdinfo", "--size", d.Uri("plain"));
        }

        var deleted = await Tool.RunAsync("pkcs11-tool", ["--module", Module, "--token-label", "disks", "--login", "--pin", "1234",
            "--delete-object", "--type", "privkey", "--label", "kek1"], s.Environment);
        Assert.That(deleted.ExitCode, Is.Zero, deleted.ToString());
        await using (var d = await StartAsync(s))
            Assert.That(d.Output, Does.Contain("does not exist in key store 'hsm1'").And.Contain("managed-disks hsm --store hsm1 key create kek1"));
    }
}
