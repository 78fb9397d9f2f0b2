using System.Text.Json;
using System.Text.RegularExpressions;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Online re-key seen from outside: the real daemon re-encrypts a disk under a fresh DEK while
/// qemu-io's data, fio's verified writes and the holes all survive, an independent decryption
/// shows which DEK the data is under, and SIGKILL at random moments never loses a byte.
/// </summary>
[NonParallelizable]
public class RekeyTests
{
    private const long MiB = 1 << 20;
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    private static string Config(DaemonProcess d) => Path.Combine(d.WorkDir, "disks.toml");

    private static async Task<ToolResult> CliOkAsync(DaemonProcess d, params string[] arguments)
    {
        var result = await Tool.RunAsync("dotnet", [Cli, .. arguments, "--config", Config(d)]);
        Assert.That(result.ExitCode, Is.Zero, $"managed-disks {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    private static async Task<JsonElement> ShowAsync(DaemonProcess d) =>
        JsonDocument.Parse((await CliOkAsync(d, "disk", "show", "disk0", "--json")).StdOut).RootElement;

    /// <summary>The extents of [0, end) as nbdinfo --map reports them.</summary>
    private static async Task<List<(long Offset, long Length, int Type)>> MapAsync(DaemonProcess d, long end)
    {
        var map = await Tool.RunOkAsync("nbdinfo", "--map", "--json", d.Uri());
        return JsonDocument.Parse(map.StdOut).RootElement.EnumerateArray()
            .Select(e => (Offset: e.GetProperty("offset").GetInt64(), Length: e.GetProperty("length").GetInt64(), Type: e.GetProperty("type").GetInt32()))
            .Where(e => e.Offset < end)
            .Select(e => (e.Offset, Math.Min(e.Length, end - e.Offset), e.Type)).ToList();
    }

    /// <summary>openssl unwraps a slot's DEK with the platform key; python3-cryptography decrypts payload sector 0 with it.</summary>
    private static async Task<byte[]> DecryptSectorZeroAsync(DaemonProcess d, string wrappedDek, string name)
    {
        string keys = Path.Combine(d.StateDir, "keys");
        string plainKey = Path.Combine(d.WorkDir, "platform-plain.pem");
        await Tool.RunOkAsync("openssl", "pkey", "-in", Path.Combine(keys, "platform-key.pem"), "-passin", $"file:{Path.Combine(keys, "platform-key.secret")}", "-out", plainKey);
        string wrapped = Path.Combine(d.WorkDir, name + ".wrapped"), dek = Path.Combine(d.WorkDir, name + ".dek");
        await File.WriteAllBytesAsync(wrapped, Convert.FromBase64String(wrappedDek));
        await Tool.RunOkAsync("openssl", "pkeyutl", "-decrypt", "-inkey", plainKey, "-pkeyopt", "rsa_padding_mode:oaep",
            "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-in", wrapped, "-out", dek);
        string script = """
            import sys
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            dek = open(sys.argv[1], 'rb').read()
            with open(sys.argv[2], 'rb') as f:
                f.seek(1 << 20); ct = f.read(4096)
            d = Cipher(algorithms.AES(dek), modes.XTS((0).to_bytes(16, 'little'))).decryptor()
            sys.stdout.write((d.update(ct) + d.finalize()).hex())
            """;
        string scriptPath = Path.Combine(d.WorkDir, "sector0.py");
        await File.WriteAllTextAsync(scriptPath, script);
        var result = await Tool.RunOkAsync("python3", scriptPath, dek, Path.Combine(d.StateDir, "disks", "disk0.img"));
        File.Delete(dek);
        File.Delete(plainKey);
        return Convert.FromHexString(result.StdOut.Trim());
    }

    [Test]
    public async Task RekeyWhileFioVerifiesKeepsDataAndHolesAndRetiresTheOldDek()
    {
        Tool.Require("fio");
        var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "64M"));
        try
        {
            await RekeyWhileFioVerifiesAsync(d);
        }
        finally
        {
            await d.DisposeAsync();
            Directory.Delete(d.WorkDir, recursive: true);
        }
    }

    private static async Task RekeyWhileFioVerifiesAsync(DaemonProcess d)
    {
        // Data in [0, 40M): patterns with holes between them; fio owns [40M, 64M).
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0xa1 0 16M", "-c", "write -P 0xb2 20M 8M", "-c", "write -P 0xc3 30M 4k",
            "-c", "write -P 0xd4 33M 3M", "-c", "discard 34M 1M", d.Uri());
        var holesBefore = await MapAsync(d, 40 * MiB);
        Assert.That(holesBefore.Count(e => (e.Type & 1) != 0), Is.GreaterThanOrEqualTo(3), "the layout has holes to keep");
        var before = await ShowAsync(d);
        string oldWrapped = before.GetProperty("key_slots")[0].GetProperty("wrapped_dek").GetString()!;

        var fio = Tool.RunAsync("fio", ["--name=rekey", "--ioengine=nbd", $"--uri={d.Uri()}", "--rw=randwrite", "--bs=4k", "--offset=40m", "--size=24m",
            "--iodepth=8", "--verify=crc32c", "--verify_backlog=64", "--verify_fatal=1", "--do_verify=1", "--loops=6"], workingDirectory: d.WorkDir);
        await d.WaitForLogAsync("attached export 'disk0'");
        var rekey = await CliOkAsync(d, "disk", "rekey", "disk0");
        Assert.That(fio.IsCompleted, Is.False, "the re-key must run while fio writes and verifies; make the fio job longer if this fails");
        Assert.That(rekey.StdOut, Does.Contain("disk disk0 re-keyed: 64 MiB under a new DEK"));
        Assert.That(rekey.StdOut, Does.Contain("re-keying disk0:"), "progress lines when not on a terminal");
        var fioResult = await fio;
        Assert.That(fioResult.ExitCode, Is.Zero, fioResult.ToString());
        Assert.That(fioResult.StdOut, Does.Contain("err= 0"));

        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0xa1 0 16M", "-c", "read -P 0 16M 4M", "-c", "read -P 0xb2 20M 8M",
            "-c", "read -P 0 28M 2M", "-c", "read -P 0xc3 30M 4k", "-c", "read -P 0xd4 33M 1M", "-c", "read -P 0 34M 1M", "-c", "read -P 0xd4 35M 1M", d.Uri());
        Assert.That(await MapAsync(d, 40 * MiB), Is.EqualTo(holesBefore), "holes stay holes, data stays data");

        var after = await ShowAsync(d);
        string newWrapped = after.GetProperty("key_slots")[0].GetProperty("wrapped_dek").GetString()!;
        Assert.That(newWrapped, Is.Not.EqualTo(oldWrapped));
        Assert.That(after.TryGetProperty("reencryption", out var pending) && pending.ValueKind != JsonValueKind.Null, Is.False, "nothing left in progress");
        Assert.That(await DecryptSectorZeroAsync(d, newWrapped, "new"), Is.EqualTo(Enumerable.Repeat((byte)0xa1, 4096).ToArray()), "the data is under the new DEK");
        Assert.That(await DecryptSectorZeroAsync(d, oldWrapped, "old"), Is.Not.EqualTo(Enumerable.Repeat((byte)0xa1, 4096).ToArray()), "the old DEK no longer decrypts it");

        var audit = (await CliOkAsync(d, "audit")).StdOut;
        Assert.That(audit, Does.Match(@"rekey platform/platform-key@\w+ disk=disk0 started"));
        Assert.That(audit, Does.Match(@"rekey platform/platform-key@\w+ disk=disk0 completed"));
    }

    /// <summary>How many SIGKILLs land in the middle of a re-key; REKEY_KILLS raises it (scripts/rekey-crash-trials.sh).</summary>
    private static int Kills => int.TryParse(Environment.GetEnvironmentVariable("REKEY_KILLS"), out int n) ? n : 5;

    private static string DiskSize => Environment.GetEnvironmentVariable("REKEY_DISK_SIZE") ?? "64M";

    [Test]
    public async Task SigkillAtRandomMomentsOfARekeyNeverLosesAByte()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        TestContext.Out.WriteLine($"seed {seed}");
        var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", DiskSize));
        long size = JsonDocument.Parse((await CliOkAsync(d, "disk", "show", "disk0", "--json")).StdOut).RootElement.GetProperty("size").GetInt64();
        int regions = (int)(size / MiB);
        // Every MiB its own pattern, except every seventh, which stays a hole.
        var writes = Enumerable.Range(0, regions).Where(r => r % 7 != 3).SelectMany(r => new[] { "-c", $"write -P {Pattern(r)} {r}M 1M" });
        await Tool.RunOkAsync("qemu-io", ["-f", "raw", .. writes, d.Uri()]);
        string[] verify = ["-f", "raw", .. Enumerable.Range(0, regions).SelectMany(r => new[] { "-c", $"read -P {(r % 7 == 3 ? 0 : Pattern(r))} {r}M 1M" }), d.Uri()];

        int midRekey = 0, attempts = 0;
        long verified = 0;
        try
        {
            while (midRekey < Kills)
            {
                Assert.That(++attempts, Is.LessThan(Kills * 3 + 5), $"only {midRekey} of {attempts} kills landed in a re-key");
                if (!d.Output.Contains("re-key resumed")) await CliOkAsync(d, "disk", "rekey", "disk0", "--no-wait");
                // A random moment: once the re-key passes a random tenth beyond where it stands.
                int from = d.Output.Contains("re-key resumed") ? (int)double.Parse(Regex.Match(d.Output, @"re-key resumed at ([\d.]+)%").Groups[1].Value) / 10 + 1 : 1;
                int decile = random.Next(Math.Min(from, 9), 10);
                await d.WaitForLogAsync($@"re-key ({string.Join('|', Enumerable.Range(decile, 11 - decile).Select(t => t * 10))})% done|re-key completed", TimeSpan.FromSeconds(60));
                d.Kill();
                await d.WaitForExitAsync(TimeSpan.FromSeconds(10));
                await d.DisposeAsync();

                d = await DaemonProcess.StartAsync(["serve", "--config", Path.Combine(d.WorkDir, "disks.toml")], d.WorkDir, d.StateDir);
                if (d.Output.Contains("re-key resumed")) midRekey++; // and the next kill lands in the same re-key
                else
                {
                    await Tool.RunOkAsync("qemu-io", verify); // the kill came after the end: check, then start another
                    verified += size;
                }
            }
            // Every byte, while the last one finishes; then a whole re-key of the written disk, uninterrupted, for the rate.
            await Tool.RunOkAsync("qemu-io", verify);
            await CliOkAsync(d, "disk", "rekey", "disk0");
            await CliOkAsync(d, "disk", "rekey", "disk0");
            await Tool.RunOkAsync("qemu-io", verify);
            verified += 2 * size;
            var rates = Regex.Matches(d.Output, @"re-key completed.*\(([\d.]+) MiB/s\)");
            Assert.That((await CliOkAsync(d, "audit", "--json")).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
                .Count(r => r.GetProperty("operation").GetString() == "rekey" && r.GetProperty("result").GetString() == "resumed"), Is.GreaterThanOrEqualTo(midRekey));
            TestContext.Out.WriteLine($"REKEY-FIGURES kills={attempts} mid_rekey_kills={midRekey} disk={size} bytes_verified={verified} rekey_mib_per_s={rates[^1].Groups[1].Value}");
        }
        finally
        {
            await d.DisposeAsync();
            Directory.Delete(d.WorkDir, recursive: true); // up to a fully written disk: do not leave it behind
        }
    }

    private static string Pattern(int region) => $"0x{(region * 37 + 11) % 255 + 1:x2}";
}
