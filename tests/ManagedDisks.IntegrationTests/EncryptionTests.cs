using System.Security.Cryptography;
using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Encrypted disks seen from outside: an independent decryption of what the daemon wrote,
/// holes, concurrent read-modify-write, and every damaged-file case.
/// </summary>
[NonParallelizable]
public class EncryptionTests
{
    private const long MiB = 1 << 20;

    private static string Backing(DaemonProcess d, string disk) => Path.Combine(d.StateDir, "disks", disk + ".img");

    private static async Task<JsonElement> DiskShowAsync(DaemonProcess d, string disk)
    {
        var result = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", disk, "--config", Path.Combine(d.WorkDir, "disks.toml"), "--json"]);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        return JsonDocument.Parse(result.StdOut).RootElement;
    }

    /// <summary>The DEK, unwrapped by openssl from the platform key and the slot that disk show prints.</summary>
    private static async Task<string> UnwrapDekWithOpensslAsync(DaemonProcess d, JsonElement show)
    {
        string keys = Path.Combine(d.StateDir, "keys");
        string plainKey = Path.Combine(d.WorkDir, "platform-plain.pem");
        await Tool.RunOkAsync("openssl", "pkey", "-in", Path.Combine(keys, "platform-key.pem"), "-passin", $"file:{Path.Combine(keys, "platform-key.secret")}", "-out", plainKey);
        string wrapped = Path.Combine(d.WorkDir, "wrapped.bin");
        await File.WriteAllBytesAsync(wrapped, Convert.FromBase64String(show.GetProperty("key_slots")[0].GetProperty("wrapped_dek").GetString()!));
        string dek = Path.Combine(d.WorkDir, "dek.bin");
        await Tool.RunOkAsync("openssl", "pkeyutl", "-decrypt", "-inkey", plainKey, "-pkeyopt", "rsa_padding_mode:oaep",
            "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-in", wrapped, "-out", dek);
        Assert.That(new FileInfo(dek).Length, Is.EqualTo(64));
        return dek;
    }

    [TestCase("4096")]
    [TestCase("512")]
    public async Task OpensslAndPythonCryptographyDecryptWhatTheDaemonWrote(string sectorSize)
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "16M", $"sector_size = {sectorSize}"));
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0xa5 0 64k", "-c", "write -P 0x3c 1M 4k", "-c", "write -P 0x77 8M 512", d.Uri());

        var show = await DiskShowAsync(d, "disk0");
        Assert.That(show.GetProperty("cipher").GetString(), Is.EqualTo("aes-xts-plain64"));
        Assert.That(show.GetProperty("sector_size").GetInt32(), Is.EqualTo(int.Parse(sectorSize)));
        Assert.That(show.GetProperty("size").GetInt64(), Is.EqualTo(16 * MiB));
        Assert.That(show.GetProperty("key_slots")[0].GetProperty("wrap_algorithm").GetString(), Is.EqualTo("RSA-OAEP-256"));
        string dek = await UnwrapDekWithOpensslAsync(d, show);

        // An independent implementation (python3-cryptography) decrypts sector i with tweak i.
        string script = """
            import sys
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            dek = open(sys.argv[1], 'rb').read(); path = sys.argv[2]
            payload, sector = int(sys.argv[3]), int(sys.argv[4])
            def plain(offset, length):
                out = b''
                with open(path, 'rb') as f:
                    for s in range(offset // sector, (offset + length + sector - 1) // sector):
                        f.seek(payload + s * sector); ct = f.read(sector)
                        assert ct != bytes(sector), f'sector {s} is a hole'
                        d = Cipher(algorithms.AES(dek), modes.XTS(s.to_bytes(16, 'little'))).decryptor()
                        out += d.update(ct) + d.finalize()
                return out[offset % sector:offset % sector + length]
            assert plain(0, 65536) == b'\xa5' * 65536, 'first 64k'
            assert plain(1 << 20, 4096) == b'\x3c' * 4096, '1M'
            assert plain(8 << 20, 512) == b'\x77' * 512, '8M'
            with open(path, 'rb') as f:
                f.seek(payload); assert b'\xa5' * 64 not in f.read(65536), 'plaintext stored'
            print('decrypted ok')
            """;
        string scriptPath = Path.Combine(d.WorkDir, "decrypt.py");
        await File.WriteAllTextAsync(scriptPath, script);
        var result = await Tool.RunAsync("python3", [scriptPath, dek, Backing(d, "disk0"), show.GetProperty("payload_offset").ToString(), sectorSize]);
        Assert.That(result.StdOut, Does.Contain("decrypted ok"), result.ToString());
    }

    [Test]
    public async Task PlatformKeyIsEncryptedAtRestAndPrivate()
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        string keys = Path.Combine(d.StateDir, "keys");
        foreach (string file in new[] { "platform-key.pem", "platform-key.secret" })
            Assert.That(File.GetUnixFileMode(Path.Combine(keys, file)), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), file);
        Assert.That(await File.ReadAllTextAsync(Path.Combine(keys, "platform-key.pem")), Does.StartWith("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    }

    [Test]
    public async Task TrimAndZeroingPunchHolesThatReadAsZerosAndMapAsHoles()
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "32M"));
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x42 0 8M", d.Uri());
        long before = DaemonTests.AllocatedBytes(Backing(d, "disk0"));
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "discard 0 2M", "-c", "write -z -u 2M 2M", "-c", "read -P 0 0 4M", "-c", "read -P 0x42 4M 4M", d.Uri());
        long after = DaemonTests.AllocatedBytes(Backing(d, "disk0"));
        // stat also counts the file system's own extent blocks, which punching can add: allow 64 KiB.
        Assert.That(before - after, Is.GreaterThanOrEqualTo(4 * MiB - 64 * 1024), "TRIM and WRITE_ZEROES must release the blocks");

        var map = await Tool.RunOkAsync("nbdinfo", "--map", "--json", d.Uri());
        var extents = JsonDocument.Parse(map.StdOut).RootElement.EnumerateArray()
            .Select(e => (Offset: e.GetProperty("offset").GetInt64(), Length: e.GetProperty("length").GetInt64(), Type: e.GetProperty("type").GetInt32())).ToList();
        Assert.That(extents[0], Is.EqualTo((0L, 4 * MiB, 3)), "hole+zero where trimmed and zeroed");
        Assert.That(extents[1], Is.EqualTo((4 * MiB, 4 * MiB, 0)), "data where written");
    }

    [Test]
    public async Task DetectZeroesStoresZeroSectorsAsHoles()
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("plain", "16M") + DaemonProcess.Disk("detect", "16M", "detect_zeroes = true"));
        foreach (string disk in new[] { "plain", "detect" })
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0 0 4M", "-c", "write -P 0x9 4M 4k", "-c", "read -P 0 0 4M", d.Uri(disk));
        long plain = DaemonTests.AllocatedBytes(Backing(d, "plain"));
        long detect = DaemonTests.AllocatedBytes(Backing(d, "detect"));
        Assert.That(plain - detect, Is.GreaterThanOrEqualTo(4 * MiB - 64 * 1024), $"plain {plain} vs detect_zeroes {detect}");
    }

    [Test]
    public async Task ConcurrentUnalignedWritersNeverLoseEachOthersBytes()
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        // Eight connections each own every eighth 512-byte slot of the same 4 KiB sectors and
        // write them all at once, many times: a read-modify-write without a lock loses slots.
        string script = """
            import os, nbd
            uri = os.environ['URI']
            handles = []
            for _ in range(8):
                h = nbd.NBD(); h.connect_uri(uri); handles.append(h)
            sectors = 64
            for rnd in range(20):
                for k, h in enumerate(handles):
                    for s in range(sectors):
                        h.aio_pwrite(bytes([(rnd * 8 + k) % 251 + 1]) * 512, s * 4096 + k * 512)
                for h in handles:
                    while h.aio_in_flight() > 0:
                        h.poll(-1)
                data = handles[0].pread(sectors * 4096, 0)
                for s in range(sectors):
                    for k in range(8):
                        want = (rnd * 8 + k) % 251 + 1
                        got = data[s * 4096 + k * 512:(s * 4096 + (k + 1) * 512)]
                        assert got == bytes([want]) * 512, f'round {rnd} sector {s} slot {k}: lost a write'
            print('no write lost')
            """;
        string path = Path.Combine(d.WorkDir, "rmw.py");
        await File.WriteAllTextAsync(path, script);
        var result = await Tool.RunAsync("nbdsh", ["-c", $"exec(open('{path}').read())"], new Dictionary<string, string> { ["URI"] = d.Uri() });
        Assert.That(result.StdOut, Does.Contain("no write lost"), result.ToString());
    }

    [Test]
    public async Task OneCorruptHeaderCopyIsRepairedAtStart()
    {
        var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        await using var _ = d;
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x61 0 1M", d.Uri());
        Assert.That(await d.StopAsync(), Is.Zero);

        Scribble(Backing(d, "disk0"), offset: 4200); // inside copy 0's metadata
        var damaged = await DiskShowAsync(d, "disk0");
        Assert.That(damaged.GetProperty("header_copies")[0].GetProperty("valid").GetBoolean(), Is.False);
        Assert.That(damaged.GetProperty("header_copies")[0].GetProperty("problem").GetString(), Does.Contain("checksum"));

        var again = await DaemonProcess.StartAsync(["serve", "--config", Path.Combine(d.WorkDir, "disks.toml")], d.WorkDir, d.StateDir);
        await using var __ = again;
        await again.WaitForLogAsync("repaired header copy 0");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x61 0 1M", again.Uri());
        var repaired = await DiskShowAsync(again, "disk0");
        Assert.That(repaired.GetProperty("header_copies").EnumerateArray().Select(c => c.GetProperty("valid").GetBoolean()), Has.All.True);
    }

    /// <summary>Damaged files: a clear error naming the file, the file untouched, other disks served.</summary>
    [TestCase("both-copies", "both header copies", TestName = "BothHeaderCopiesCorrupt")]
    [TestCase("truncate", "is truncated", TestName = "TruncatedBackingFile")]
    [TestCase("not-a-disk", "is not a ManagedDisks encrypted disk", TestName = "FileThatIsNotADisk")]
    [TestCase("wrong-key", "platform key", TestName = "WrongPlatformKey")]
    public async Task DamagedDiskIsRefusedUntouchedWhileOthersAreServed(string damage, string message)
    {
        var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("good", "8M") + DaemonProcess.Disk("bad", "8M"));
        await using var _ = d;
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 64k", d.Uri("good"));
        Assert.That(await d.StopAsync(), Is.Zero);

        string bad = Backing(d, "bad");
        switch (damage)
        {
            case "both-copies":
                Scribble(bad, 4200);
                Scribble(bad, 256 * 1024 + 4200);
                break;
            case "truncate":
                File.SetUnixFileMode(bad, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                await using (var f = new FileStream(bad, FileMode.Open)) f.SetLength(4 * MiB);
                break;
            case "not-a-disk":
                await File.WriteAllBytesAsync(bad, RandomNumberGenerator.GetBytes((int)(9 * MiB)));
                break;
            case "wrong-key":
            {
                // Another daemon's platform key in place of this one's: its slot cannot be unwrapped.
                await using var other = await DaemonProcess.StartAsync(DaemonProcess.Disk("x", "4M"));
                await other.StopAsync();
                var good = await DiskShowAsync(d, "good"); // recorded before the swap
                Assert.That(good.GetProperty("key_slots")[0].GetProperty("key_version").GetString(), Is.Not.Empty);
                foreach (string file in new[] { "platform-key.pem", "platform-key.secret" })
                    File.Copy(Path.Combine(other.StateDir, "keys", file), Path.Combine(d.StateDir, "keys", file), overwrite: true);
                break;
            }
        }
        string hashBefore = Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(bad)));

        var again = DaemonProcess.Launch(["serve", "--config", Path.Combine(d.WorkDir, "disks.toml")], d.WorkDir, d.StateDir);
        await using var __ = again;
        if (damage == "wrong-key")
        {
            // Every disk is on the platform key: none is served, and the daemon waits for the right
            // keys (the key poller retries) instead of serving anything wrongly.
            await again.WaitForLogAsync("Disk 'bad' is not served.*platform key");
            await again.WaitForLogAsync("Disk 'good' is not served");
            Assert.That((await Tool.RunAsync("nbdinfo", ["--size", again.Uri("good")])).ExitCode, Is.Not.Zero);
            await again.StopAsync();
        }
        else
        {
            await again.WaitReadyAsync();
            Assert.That(again.Output, Does.Contain("Disk 'bad' is not served").And.Contain(bad).And.Contain(message));
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x33 0 64k", again.Uri("good"));
            var refused = await Tool.RunAsync("nbdinfo", ["--size", again.Uri("bad")]);
            Assert.That(refused.ExitCode, Is.Not.Zero, "a disk that failed to open must not be served");
            await again.StopAsync();
        }
        Assert.That(Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(bad))), Is.EqualTo(hashBefore), "nothing may be written to a damaged disk");
    }

    [Test]
    public async Task DiskShowWorksWhileServingAndPrintsText()
    {
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        var text = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", "disk0", "--config", Path.Combine(d.WorkDir, "disks.toml")]);
        Assert.That(text.ExitCode, Is.Zero, text.ToString());
        Assert.That(text.StdOut, Does.Contain("aes-xts-plain64").And.Contain("copy 0 at 0: valid").And.Contain("key slot        platform/platform-key"));
        var missing = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", "nope", "--config", Path.Combine(d.WorkDir, "disks.toml")]);
        Assert.That(missing.ExitCode, Is.EqualTo(1));
        Assert.That(missing.StdErr, Does.Contain("no disk named 'nope'").And.Contain("disk0"));
    }

    private static void Scribble(string path, long offset)
    {
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write("corrupted by the test"u8);
    }
}
