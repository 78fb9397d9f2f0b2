using System.Globalization;
using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// The daemon driven by the real NBD clients people use: libnbd's nbdinfo and nbdcopy, qemu-img
/// and qemu-io, fio's nbd engine and nbd-client. Each test starts its own daemon with two disks.
/// </summary>
[TestFixture]
public sealed class ClientToolsTests : TwoDiskTests
{
    /// <summary>Bytes allocated to a file (st_blocks × 512), as stat(1) reports them.</summary>
    private static async Task<long> AllocatedBytesAsync(string path)
    {
        var result = await Tool.RunOkAsync("stat", "-c", "%b %B", path);
        var parts = result.StdOut.Trim().Split(' ');
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * long.Parse(parts[1], CultureInfo.InvariantCulture);
    }

    /// <summary>A file of random bytes in the daemon's work folder (deleted with it).</summary>
    private static string RandomFile(DaemonProcess daemon, string name, long length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        string path = Path.Combine(daemon.WorkDir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Reads a file the daemon has locked: .NET's own FileStream would take a conflicting flock.</summary>
    private static async Task<byte[]> ReadBackingAsync(string path, long offset, int length)
    {
        string copy = path + $".{offset}.copy";
        await Tool.RunOkAsync("dd", $"if={path}", $"of={copy}", "bs=64K", $"skip={offset}", $"count={length}",
            "iflag=skip_bytes,count_bytes", "status=none");
        try { return await File.ReadAllBytesAsync(copy); }
        finally { File.Delete(copy); }
    }

    /// <summary>A disk's header as <c>managed-disks disk show --json</c> prints it.</summary>
    private static async Task<JsonElement> DiskShowAsync(DaemonProcess daemon, string name)
    {
        var result = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", name,
            "--config", Path.Combine(daemon.WorkDir, "disks.toml"), "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"disk show {name}:\n{result}");
        return ParseJson(result);
    }

    /// <summary>Where the encrypted payload starts in the backing file; checks the header's size and cipher, and the file's length.</summary>
    private static async Task<long> PayloadOffsetAsync(DaemonProcess daemon, string name, long size, int sectorSize = 4096)
    {
        var show = await DiskShowAsync(daemon, name);
        Assert.That(show.GetProperty("size").GetInt64(), Is.EqualTo(size));
        Assert.That(show.GetProperty("sector_size").GetInt32(), Is.EqualTo(sectorSize));
        Assert.That(show.GetProperty("cipher").GetString(), Is.EqualTo("aes-xts-plain64"));
        long payloadOffset = show.GetProperty("payload_offset").GetInt64();
        Assert.That(payloadOffset, Is.GreaterThan(0), "payload offset");
        Assert.That(payloadOffset % 4096, Is.Zero, "payload offset not aligned to a file system block");
        Assert.That(new FileInfo(DiskFile(daemon, name)).Length, Is.EqualTo(payloadOffset + size), "backing file length");
        return payloadOffset;
    }

    /// <summary>
    /// The backing file holds ciphertext for plaintext written at <paramref name="offset"/>: no sector
    /// is stored as its plaintext or as zeros, and no piece of the plaintext appears anywhere in the file.
    /// </summary>
    private static async Task AssertCiphertextAsync(DaemonProcess daemon, string name, long payloadOffset, long offset,
        ReadOnlyMemory<byte> plaintext, int sectorSize = 4096)
    {
        string file = DiskFile(daemon, name);
        var stored = await ReadBackingAsync(file, payloadOffset + offset, plaintext.Length);
        Assert.That(stored, Has.Length.EqualTo(plaintext.Length), "backing file too short");
        for (int i = 0; i < plaintext.Length; i += sectorSize)
        {
            bool plain = stored.AsSpan(i, sectorSize).SequenceEqual(plaintext.Span.Slice(i, sectorSize));
            Assert.That(plain, Is.False, $"sector at {offset + i} is stored as plaintext");
            Assert.That(stored.AsSpan(i, sectorSize).IndexOfAnyExcept((byte)0), Is.Not.EqualTo(-1), $"sector at {offset + i} is stored as zeros, not ciphertext");
        }
        var whole = await ReadBackingAsync(file, 0, (int)new FileInfo(file).Length);
        for (int i = 0; i < plaintext.Length; i += 256 * 1024)
            Assert.That(whole.AsSpan().IndexOf(plaintext.Span.Slice(i, 64)), Is.EqualTo(-1), $"plaintext written at {offset + i} appears in the backing file");
    }

    /// <summary>True if any byte of [offset, offset+length) of a file is allocated (SEEK_DATA: unwritten extents count as holes).</summary>
    private static async Task<bool> FileHasDataAsync(string path, long offset, long length)
    {
        const string script = """
            import errno, os, sys
            fd = os.open(sys.argv[1], os.O_RDONLY)
            offset, length = int(sys.argv[2]), int(sys.argv[3])
            try:
                data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                data = None
            print('data' if data is not None and data < offset + length else 'hole')
            """;
        var result = await Tool.RunOkAsync("python3", "-c", script, path,
            offset.ToString(CultureInfo.InvariantCulture), length.ToString(CultureInfo.InvariantCulture));
        return result.StdOut.Trim() == "data";
    }

    private static JsonElement ParseJson(ToolResult result)
    {
        try
        {
            return JsonDocument.Parse(result.StdOut).RootElement;
        }
        catch (JsonException e)
        {
            Assert.Fail($"not JSON ({e.Message}):\n{result}");
            throw;
        }
    }

    private static void AssertFioOk(ToolResult result)
    {
        Assert.That(result.ExitCode, Is.Zero, $"fio failed:\n{result}");
        Assert.That(result.StdOut, Does.Contain("err= 0"), $"fio reported errors:\n{result}");
        Assert.That(result.StdOut + result.StdErr, Does.Not.Contain("verify:").And.Not.Contain("bad magic").And.Not.Contain("crc32c:"),
            $"fio verification failed:\n{result}");
    }

    // ---------------------------------------------------------------------------------- nbdinfo

    [Test]
    public async Task Nbdinfo_Json_ReportsSizeBlockSizesAndCapabilities()
    {
        await using var d = await StartTwoDisksAsync();
        var json = ParseJson(await Tool.RunOkAsync("nbdinfo", "--json", d.Uri("disk0")));

        Assert.That(json.GetProperty("protocol").GetString(), Is.EqualTo("newstyle-fixed"));
        Assert.That(json.GetProperty("structured").GetBoolean(), Is.True);
        var exports = json.GetProperty("exports");
        Assert.That(exports.GetArrayLength(), Is.EqualTo(1));
        var e = exports[0];
        Assert.Multiple(() =>
        {
            Assert.That(e.GetProperty("export-name").GetString(), Is.EqualTo("disk0"));
            Assert.That(e.GetProperty("description").GetString(), Is.EqualTo(Disk0Description));
            Assert.That(e.GetProperty("export-size").GetInt64(), Is.EqualTo(Disk0Size));
            // encrypted disks: 512-byte addressing, 4K sectors (read-modify-written below that)
            Assert.That(e.GetProperty("block_size_minimum").GetInt64(), Is.EqualTo(512));
            Assert.That(e.GetProperty("block_size_preferred").GetInt64(), Is.EqualTo(4096));
            Assert.That(e.GetProperty("block_size_maximum").GetInt64(), Is.EqualTo(32 * MiB));
            Assert.That(e.GetProperty("contexts").EnumerateArray().Select(c => c.GetString()), Does.Contain("base:allocation"));
            Assert.That(e.GetProperty("is_read_only").GetBoolean(), Is.False);
            Assert.That(e.GetProperty("is_rotational").GetBoolean(), Is.False);
            foreach (string can in new[] { "can_cache", "can_df", "can_fast_zero", "can_flush", "can_fua", "can_multi_conn", "can_trim", "can_zero" })
                Assert.That(e.GetProperty(can).GetBoolean(), Is.True, can);
        });

        var size = await Tool.RunOkAsync("nbdinfo", "--size", d.Uri("disk1"));
        Assert.That(size.StdOut.Trim(), Is.EqualTo(Disk1Size.ToString(CultureInfo.InvariantCulture)));
    }

    [Test]
    public async Task SectorSize512Disk_AdvertisesAndEncrypts512ByteSectors()
    {
        var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("small", "16M", "sector_size = 512"));
        CleanUpAfterPass(d);
        await using var _ = d;
        string uri = d.Uri("small");
        var e = ParseJson(await Tool.RunOkAsync("nbdinfo", "--json", uri)).GetProperty("exports")[0];
        Assert.Multiple(() =>
        {
            Assert.That(e.GetProperty("export-size").GetInt64(), Is.EqualTo(16 * MiB));
            Assert.That(e.GetProperty("block_size_minimum").GetInt64(), Is.EqualTo(512));
            Assert.That(e.GetProperty("block_size_preferred").GetInt64(), Is.EqualTo(512));
            Assert.That(e.GetProperty("block_size_maximum").GetInt64(), Is.EqualTo(32 * MiB));
        });

        // single 512-byte sectors, not 4K-aligned: no read-modify-write needed, each its own XTS sector
        var write = await Tool.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x3c 512 1536", "-c", "read -P 0x3c 512 1536",
            "-c", "read -P 0 0 512", "-c", "read -P 0 2048 2048", uri]);
        Assert.That(write.ExitCode, Is.Zero, write.ToString());
        Assert.That(write.StdOut + write.StdErr, Does.Not.Contain("Pattern verification failed"), write.ToString());

        long payloadOffset = await PayloadOffsetAsync(d, "small", 16 * MiB, sectorSize: 512);
        var plaintext = Enumerable.Repeat((byte)0x3c, 1536).ToArray();
        await AssertCiphertextAsync(d, "small", payloadOffset, 512, plaintext, sectorSize: 512);
        // equal plaintext sectors encrypt differently (the sector number is the XTS tweak)
        var stored = await ReadBackingAsync(DiskFile(d, "small"), payloadOffset + 512, 1536);
        Assert.That(stored.AsSpan(0, 512).SequenceEqual(stored.AsSpan(512, 512)) || stored.AsSpan(512, 512).SequenceEqual(stored.AsSpan(1024, 512)),
            Is.False, "identical plaintext sectors have identical ciphertext");
        // the sector before, never written, is still a hole of zeros
        Assert.That((await ReadBackingAsync(DiskFile(d, "small"), payloadOffset, 512)).All(b => b == 0), Is.True);
    }

    [Test]
    public async Task Nbdinfo_List_ShowsBothDisks()
    {
        await using var d = await StartTwoDisksAsync();
        var json = ParseJson(await Tool.RunOkAsync("nbdinfo", "--list", "--json", d.Uri("disk0")));
        var exports = json.GetProperty("exports").EnumerateArray()
            .ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e);
        Assert.That(exports.Keys, Is.EquivalentTo(new[] { "disk0", "disk1" }));
        Assert.That(exports["disk0"].GetProperty("export-size").GetInt64(), Is.EqualTo(Disk0Size));
        Assert.That(exports["disk1"].GetProperty("export-size").GetInt64(), Is.EqualTo(Disk1Size), "INFO must report the real size (nbd-server bug)");
        Assert.That(exports["disk0"].GetProperty("description").GetString(), Is.EqualTo(Disk0Description));

        var text = await Tool.RunOkAsync("nbdinfo", "--list", d.Uri("disk1"));
        Assert.That(text.StdOut, Does.Contain("export=\"disk0\"").And.Contain("export=\"disk1\""));
    }

    [Test]
    public async Task Nbdinfo_Map_ShowsWrittenDataBetweenHoles()
    {
        await using var d = await StartTwoDisksAsync();
        await Tool.RunOkAsync("nbdsh", "-u", d.Uri("disk0"), "-c", "h.pwrite(b'\\xaa' * 65536, 1048576); h.flush()");

        var map = ParseJson(await Tool.RunOkAsync("nbdinfo", "--map", "--json", d.Uri("disk0")));
        var extents = map.EnumerateArray()
            .Select(e => (Offset: e.GetProperty("offset").GetInt64(), Length: e.GetProperty("length").GetInt64(), Type: e.GetProperty("type").GetInt32()))
            .ToList();
        Assert.That(extents, Is.EqualTo(new[] { (0L, MiB, 3), (MiB, 65536L, 0), (MiB + 65536, Disk0Size - MiB - 65536, 3) }),
            string.Join("\n", extents));

        var totals = await Tool.RunOkAsync("nbdinfo", "--map", "--totals", d.Uri("disk0"));
        Assert.That(totals.StdOut, Does.Match(@"(?m)^\s*65536\s+0\.1%\s+0\s+data"), totals.ToString());
    }

    [Test]
    public async Task Nbdinfo_Can_AllAdvertisedFeatures()
    {
        await using var d = await StartTwoDisksAsync();
        foreach (string feature in new[] { "connect", "read", "write", "trim", "zero", "fast-zero", "df", "multi-conn", "cache", "flush", "fua", "structured-reply" })
        {
            var result = await Tool.RunAsync("nbdinfo", ["--can", feature, d.Uri("disk0")]);
            Assert.That(result.ExitCode, Is.Zero, $"nbdinfo --can {feature}: {result}");
        }
        foreach (string state in new[] { "read-only", "rotational", "tls" })
        {
            var result = await Tool.RunAsync("nbdinfo", ["--is", state, d.Uri("disk1")]);
            Assert.That(result.ExitCode, Is.EqualTo(2), $"nbdinfo --is {state} should be false: {result}");
        }
    }

    // ---------------------------------------------------------------------------- qemu-img/-io

    [Test]
    public async Task QemuImg_InfoConvertCompareMap()
    {
        await using var d = await StartTwoDisksAsync();
        string uri = d.Uri("disk1");

        var info = ParseJson(await Tool.RunOkAsync("qemu-img", "info", "-f", "raw", "--output=json", uri));
        Assert.That(info.GetProperty("virtual-size").GetInt64(), Is.EqualTo(Disk1Size));

        string src = RandomFile(d, "src.img", 8 * MiB);
        await Tool.RunOkAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, uri);
        var compare = await Tool.RunAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", src, uri]);
        Assert.That(compare.ExitCode, Is.Zero, $"compare after convert: {compare}");
        Assert.That(compare.StdOut, Does.Contain("Images are identical"));

        // compare really compares: one changed byte in the middle is found
        var bytes = await File.ReadAllBytesAsync(src);
        bytes[5 * MiB + 123] ^= 0xff;
        string changed = Path.Combine(d.WorkDir, "changed.img");
        await File.WriteAllBytesAsync(changed, bytes);
        var differs = await Tool.RunAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", changed, uri]);
        Assert.That(differs.ExitCode, Is.EqualTo(1), $"compare of different content: {differs}");
        Assert.That(differs.StdOut, Does.Contain("Content mismatch at offset 5242880"));

        var map = ParseJson(await Tool.RunOkAsync("qemu-img", "map", "-f", "raw", "--output=json", uri));
        var entries = map.EnumerateArray().Select(e => (
            Start: e.GetProperty("start").GetInt64(), Length: e.GetProperty("length").GetInt64(),
            Data: e.GetProperty("data").GetBoolean(), Zero: e.GetProperty("zero").GetBoolean())).ToList();
        Assert.That(entries, Is.EqualTo(new[] { (0L, 8 * MiB, true, false), (8 * MiB, Disk1Size - 8 * MiB, false, true) }),
            string.Join("\n", entries));

        // the backing file holds ciphertext of the bytes written after its header, and holes after them
        long payloadOffset = await PayloadOffsetAsync(d, "disk1", Disk1Size);
        await AssertCiphertextAsync(d, "disk1", payloadOffset, 0, await File.ReadAllBytesAsync(src));
        Assert.That(await FileHasDataAsync(DiskFile(d, "disk1"), payloadOffset + 8 * MiB, Disk1Size - 8 * MiB), Is.False,
            "the unwritten part of the disk is allocated in the backing file");
    }

    [Test]
    public async Task QemuIo_CommandLineFromNbdMd_WithPatternVerification()
    {
        await using var d = await StartTwoDisksAsync();
        string uri = d.Uri("disk1");
        // First fill 0..8M so that the zero and discard commands have data to remove.
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 9M", uri);
        var result = await Tool.RunAsync("qemu-io", [
            "-f", "raw",
            "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M", "-c", "write -f -P 0xcd 1M 64k", "-c", "flush",
            "-c", "write -z 2M 1M", "-c", "write -z -u 3M 1M", "-c", "write -z -n 4M 1M", "-c", "discard 5M 1M",
            "-c", "aio_write -P 0x11 6M 64k", "-c", "aio_flush", "-c", "readv -P 0xab 0 4k 4k", "-c", "writev -P 0x33 8M 4k 4k",
            "-c", "map", "-c", "alloc 0 8M",
            // verify every region with a pattern
            "-c", "read -P 0xab 0 1M", "-c", "read -P 0xcd 1M 64k", "-c", "read -P 0x77 1088k 960k",
            "-c", "read -P 0 2M 3M", "-c", "read -P 0x11 6M 64k", "-c", "read -P 0x77 6208k 1984k",
            "-c", "read -P 0x33 8M 8k", "-c", "read -P 0x77 8200k 1016k", "-c", "read -P 0 9M 1M",
            uri]);
        Assert.That(result.ExitCode, Is.Zero, $"qemu-io failed:\n{result}");
        Assert.That(result.StdOut + result.StdErr, Does.Not.Contain("Pattern verification failed").And.Not.Contain("error"), result.ToString());

        // write -z -u (may unmap) punched a hole that qemu sees as zero; discard too
        var map = ParseJson(await Tool.RunOkAsync("qemu-img", "map", "-f", "raw", "--output=json", uri));
        bool IsZeroAt(long offset) => map.EnumerateArray().Any(e =>
            e.GetProperty("start").GetInt64() <= offset && offset < e.GetProperty("start").GetInt64() + e.GetProperty("length").GetInt64()
            && e.GetProperty("zero").GetBoolean() && !e.GetProperty("data").GetBoolean());
        Assert.That(IsZeroAt(3 * MiB) && IsZeroAt(4 * MiB - 1), Is.True, $"write -z -u range not a zero hole:\n{map}");
        Assert.That(IsZeroAt(0) || IsZeroAt(MiB), Is.False, $"data reported as zero:\n{map}");
    }

    [Test]
    public async Task TrimAndWriteZeroes_PunchHolesInTheBackingFile()
    {
        await using var d = await StartTwoDisksAsync();
        string uri = d.Uri("disk1");
        string file = DiskFile(d, "disk1");
        long payload = await PayloadOffsetAsync(d, "disk1", Disk1Size);
        // st_blocks also counts the file system's own extent-tree blocks, which come and go as
        // punching splits and merges extents: allow a little of it in the released byte counts.
        const long fsMetadata = 64 * 1024;
        Task<bool> HasData(long offset, long length) => FileHasDataAsync(file, payload + offset, length);

        Assert.That(await AllocatedBytesAsync(file), Is.LessThan(MiB), "a new disk is not sparse");
        Assert.That(await HasData(0, Disk1Size), Is.False, "a new disk has data in its payload");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x55 0 16M", uri);
        long full = await AllocatedBytesAsync(file);
        Assert.That(full, Is.GreaterThanOrEqualTo(16 * MiB), "written data is not allocated");
        Assert.That(await HasData(0, 4096) && await HasData(16 * MiB - 4096, 4096), Is.True, "written data is not in the payload area");
        Assert.That(await HasData(16 * MiB, Disk1Size - 16 * MiB), Is.False, "data beyond what was written");

        // TRIM (qemu-io discard) releases the blocks
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "discard 0 4M", uri);
        long afterTrim = await AllocatedBytesAsync(file);
        Assert.That(full - afterTrim, Is.GreaterThanOrEqualTo(4 * MiB - fsMetadata), $"TRIM released {full - afterTrim} bytes of 4 MiB");
        Assert.That(await HasData(0, 4 * MiB), Is.False, "TRIM left data in the backing file");
        Assert.That(await HasData(4 * MiB, 4096), Is.True, "TRIM went past its range");

        // WRITE_ZEROES that may unmap releases them too
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -z -u 4M 4M", uri);
        long afterZero = await AllocatedBytesAsync(file);
        Assert.That(afterTrim - afterZero, Is.GreaterThanOrEqualTo(4 * MiB - fsMetadata), $"WRITE_ZEROES released {afterTrim - afterZero} bytes of 4 MiB");
        Assert.That(await HasData(4 * MiB, 4 * MiB), Is.False, "WRITE_ZEROES (may unmap) left data in the backing file");

        // WRITE_ZEROES with NO_HOLE keeps the range provisioned
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -z 8M 4M", uri);
        long afterNoHole = await AllocatedBytesAsync(file);
        Assert.That(afterZero - afterNoHole, Is.LessThan(MiB), "WRITE_ZEROES with NO_HOLE released blocks");
        Assert.That(afterNoHole, Is.GreaterThanOrEqualTo(8 * MiB), "8M..16M is no longer provisioned");

        // nbdsh trim and zero (plain: may punch) through libnbd as well: 12M..14M and 14M..16M
        await Tool.RunOkAsync("nbdsh", "-u", uri, "-c", "h.trim(2*1024*1024, 12*1024*1024); h.zero(2*1024*1024, 14*1024*1024); h.flush()");
        long afterLibnbd = await AllocatedBytesAsync(file);
        Assert.That(afterNoHole - afterLibnbd, Is.GreaterThanOrEqualTo(4 * MiB - fsMetadata), $"libnbd trim+zero released {afterNoHole - afterLibnbd} bytes of 4 MiB");
        Assert.That(await HasData(12 * MiB, 4 * MiB), Is.False, "libnbd trim+zero left data in the backing file");

        // the backing file reads zero where it was trimmed or zeroed (holes, or zeros for NO_HOLE)
        var zeros = await ReadBackingAsync(file, payload, (int)(16 * MiB));
        Assert.That(zeros.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "trimmed or zeroed bytes are not zero in the backing file");

        // TRIM of a range that is 512- but not 4K-aligned rounds inwards to whole sectors:
        // 16M+512 .. 16M+9.5K punches only the sector 16M+4K .. 16M+8K
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x66 16M 16k", "-c", "write -P 0x77 16400k 16k", uri);
        await Tool.RunOkAsync("nbdsh", "-u", uri, "-c", $"h.trim(9216, {16 * MiB + 512}); h.flush()");
        Assert.That(await HasData(16 * MiB, 4096), Is.True, "TRIM of part of a sector released it");
        Assert.That(await HasData(16 * MiB + 4096, 4096), Is.False, "TRIM did not punch the whole sector inside its range");
        Assert.That(await HasData(16 * MiB + 8192, 4096), Is.True, "TRIM of part of a sector released it");
        // WRITE_ZEROES with partial sectors at both ends: the edges are read-modify-written (and stay
        // data), the whole sector between them is punched. 16M+16.5K .. 16M+25.5K, punching 16M+20K .. 16M+24K.
        await Tool.RunOkAsync("nbdsh", "-u", uri, "-c", $"h.zero(9216, {16 * MiB + 16896}); h.flush()");
        Assert.That(await HasData(16 * MiB + 16 * 1024, 4096), Is.True, "the partial head sector of a zero was released");
        Assert.That(await HasData(16 * MiB + 20 * 1024, 4096), Is.False, "the whole sector of a zero was not punched");
        Assert.That(await HasData(16 * MiB + 24 * 1024, 4096), Is.True, "the partial tail sector of a zero was released");
        var read = await Tool.RunAsync("qemu-io", ["-f", "raw",
            "-c", "read -P 0x66 16M 4k", "-c", "read -P 0 16388k 4k", "-c", "read -P 0x66 16392k 8k",
            "-c", "read -P 0x77 16400k 512", "-c", "read -P 0 16794112 9216", "-c", "read -P 0x77 16803328 6656",
            uri]);
        Assert.That(read.ExitCode, Is.Zero, read.ToString());
        Assert.That(read.StdOut + read.StdErr, Does.Not.Contain("Pattern verification failed"), read.ToString());

        // and the file's size never changed
        Assert.That(new FileInfo(file).Length, Is.EqualTo(payload + Disk1Size));
    }

    // ------------------------------------------------------------------------------------ nbdcopy

    [Test]
    public async Task Nbdcopy_RoundTrip_SparseAndAllocated()
    {
        await using var d = await StartTwoDisksAsync();
        string uri = d.Uri("disk0");
        // 8 MiB random, a 4 MiB zero gap, 4 MiB random: the copy out must keep the gap sparse
        var content = new byte[16 * MiB];
        new Random(7).NextBytes(content);
        Array.Clear(content, (int)(8 * MiB), (int)(4 * MiB));
        string src = Path.Combine(d.WorkDir, "src.img");
        await File.WriteAllBytesAsync(src, content);

        await Tool.RunOkAsync("nbdcopy", "--flush", "--connections=4", "--requests=16", "--request-size=1048576", src, uri);

        string sparse = Path.Combine(d.WorkDir, "out.img");
        await Tool.RunOkAsync("nbdcopy", uri, sparse);
        var copied = await File.ReadAllBytesAsync(sparse);
        Assert.That(copied.Length, Is.EqualTo(Disk0Size));
        Assert.That(copied.AsSpan(0, content.Length).SequenceEqual(content), Is.True, "round trip changed the data");
        Assert.That(copied.AsSpan(content.Length).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the rest of the disk is not zero");
        long allocated = await AllocatedBytesAsync(sparse);
        Assert.That(allocated, Is.LessThanOrEqualTo(13 * MiB), $"sparse copy allocated {allocated} bytes for 12 MiB of data");

        string allocatedCopy = Path.Combine(d.WorkDir, "out-allocated.img");
        await Tool.RunOkAsync("nbdcopy", "--allocated", uri, allocatedCopy);
        var copied2 = await File.ReadAllBytesAsync(allocatedCopy);
        Assert.That(copied2.AsSpan().SequenceEqual(copied), Is.True, "--allocated copy differs");

        // and to stdout
        var piped = await Tool.RunAsync("bash", ["-c", $"nbdcopy '{uri}' - | cmp -n {content.Length} - '{src}'"]);
        Assert.That(piped.ExitCode, Is.Zero, $"nbdcopy to stdout: {piped}");

        // the data written through 4 connections is in the backing file, encrypted; the zero gap
        // (which nbdcopy writes as zeroes) and the rest of the disk read as zeros there
        long payloadOffset = await PayloadOffsetAsync(d, "disk0", Disk0Size);
        await AssertCiphertextAsync(d, "disk0", payloadOffset, 0, content.AsMemory(0, (int)(8 * MiB)));
        await AssertCiphertextAsync(d, "disk0", payloadOffset, 12 * MiB, content.AsMemory((int)(12 * MiB)));
        var gap = await ReadBackingAsync(DiskFile(d, "disk0"), payloadOffset + 8 * MiB, (int)(4 * MiB));
        Assert.That(gap.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the zero gap is stored as something other than zeros");
        Assert.That(await FileHasDataAsync(DiskFile(d, "disk0"), payloadOffset + 16 * MiB, Disk0Size - 16 * MiB), Is.False,
            "the unwritten part of the disk is allocated in the backing file");
    }

    // ---------------------------------------------------------------------------------------- fio

    [Test]
    public async Task Fio_RandRw_WithCrc32cVerify()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await Tool.RunAsync("fio", ["--name=randrw", "--ioengine=nbd", $"--uri={d.Uri("disk0")}", "--rw=randrw",
            "--bs=4k", "--size=32m", "--iodepth=32", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1"]);
        AssertFioOk(result);
    }

    [Test]
    public async Task Fio_SequentialWrite_Md5Verify_OverTcp()
    {
        await using var d = await StartTwoDisksAsync(tcp: true);
        var result = await Tool.RunAsync("fio", ["--name=seq", "--ioengine=nbd", $"--uri={d.TcpUri("disk1")}", "--rw=write",
            "--bs=1m", "--size=32m", "--iodepth=8", "--verify=md5", "--verify_fatal=1"]);
        AssertFioOk(result);
        Assert.That(await AllocatedBytesAsync(DiskFile(d, "disk1")), Is.GreaterThanOrEqualTo(32 * MiB));
    }

    [Test]
    public async Task Fio_RandTrim_ReleasesBlocksInTheBackingFile()
    {
        await using var d = await StartTwoDisksAsync();
        string uri = d.Uri("disk1");
        string file = DiskFile(d, "disk1");
        var fill = await Tool.RunAsync("fio", ["--name=fill", "--ioengine=nbd", $"--uri={uri}", "--rw=write", "--bs=1m", "--size=32m", "--iodepth=4"]);
        AssertFioOk(fill);
        long before = await AllocatedBytesAsync(file);
        Assert.That(before, Is.GreaterThanOrEqualTo(32 * MiB));

        var trim = await Tool.RunAsync("fio", ["--name=trim", "--ioengine=nbd", $"--uri={uri}", "--rw=randtrim", "--bs=64k", "--size=32m", "--iodepth=8"]);
        AssertFioOk(trim);
        Assert.That(trim.StdOut, Does.Contain("trim:"), $"fio sent no trims:\n{trim}");
        long after = await AllocatedBytesAsync(file);
        Assert.That(after, Is.LessThan(2 * MiB), $"after trimming all 32 MiB, {after} bytes are still allocated (before: {before})");

        var info = ParseJson(await Tool.RunOkAsync("nbdinfo", "--map", "--json", uri));
        Assert.That(info.EnumerateArray().All(e => e.GetProperty("type").GetInt32() == 3), Is.True, $"trimmed disk not all hole:\n{info}");
    }

    [Test]
    public async Task Fio_RandWrite_WithFsync()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await Tool.RunAsync("fio", ["--name=fsync", "--ioengine=nbd", $"--uri={d.Uri("disk0")}", "--rw=randwrite",
            "--bs=4k", "--size=16m", "--iodepth=16", "--fsync=32", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1"]);
        AssertFioOk(result);
        Assert.That(result.StdOut, Does.Contain("fsync/fdatasync/sync_file_range").And.Contain("sync (usec)"), $"fio sent no flushes:\n{result}");
    }

    // ------------------------------------------------------------------------------- nbd-client

    private static IReadOnlyList<string> ListedNames(ToolResult result) =>
        result.StdOut.Split('\n', StringSplitOptions.TrimEntries)
            .Where(l => l.Length > 0 && !l.StartsWith("Negotiation", StringComparison.Ordinal))
            .Select(l => l.Split(':')[0])
            .ToList();

    [Test]
    public async Task NbdClient_List_UnixSocket()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await Tool.RunOkAsync("nbd-client", "-l", "-u", d.SocketPath);
        Assert.That(ListedNames(result), Is.EquivalentTo(new[] { "disk0", "disk1" }), result.ToString());
        Assert.That(result.StdOut, Does.Contain($"disk0: {Disk0Description}"));
    }

    [Test]
    public async Task NbdClient_List_Tcp()
    {
        await using var d = await StartTwoDisksAsync(tcp: true);
        Assert.That(d.TcpPort, Is.Not.Null);
        var result = await Tool.RunOkAsync("nbd-client", "-l", "127.0.0.1", d.TcpPort!.Value.ToString(CultureInfo.InvariantCulture));
        Assert.That(ListedNames(result), Is.EquivalentTo(new[] { "disk0", "disk1" }), result.ToString());
    }

    // -------------------------------------------------------------------------------------- TCP

    [Test]
    public async Task TcpUri_WorksForLibnbdAndQemu()
    {
        await using var d = await StartTwoDisksAsync(tcp: true);
        string tcp = d.TcpUri("disk0");
        var size = await Tool.RunOkAsync("nbdinfo", "--size", tcp);
        Assert.That(size.StdOut.Trim(), Is.EqualTo(Disk0Size.ToString(CultureInfo.InvariantCulture)));
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 2M", "-c", "read -P 0x5a 1M 2M", tcp);
        // written over TCP, read over the Unix socket
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x5a 1M 2M", "-c", "read -P 0 0 1M", d.Uri("disk0"));
        var list = ParseJson(await Tool.RunOkAsync("nbdinfo", "--list", "--json", d.TcpUri("disk1")));
        Assert.That(list.GetProperty("exports").GetArrayLength(), Is.EqualTo(2));
        await Tool.RunOkAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", d.Uri("disk0"), tcp);
    }
}
