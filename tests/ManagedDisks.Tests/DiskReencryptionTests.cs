using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Tests;

/// <summary>
/// The re-encryption engine over a real sparse file, with clients writing between steps, and
/// a crash after every single write the engine or a client makes: the disk must read back
/// exactly what was acknowledged, and finish under the new DEK with its holes still holes.
/// </summary>
public class DiskReencryptionTests
{
    private const long Payload = HeaderCodec.DefaultPayloadOffset;
    private const int Size = 2 << 20;
    private const int Chunk = 256 * 1024;
    private string _dir = null!;
    private DataEncryptionKey _oldDek = null!, _newDek = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-reenc-").FullName;
        _oldDek = DataEncryptionKey.Generate();
        _newDek = DataEncryptionKey.Generate();
    }

    [TearDown]
    public void TearDown()
    {
        _oldDek.Dispose();
        _newDek.Dispose();
        Directory.Delete(_dir, true);
    }

    /// <summary>
    /// A process that dies: writes up to the limit reach the file; from then on every call fails.
    /// Transient: only that one write fails (an I/O error the daemon survives).
    /// </summary>
    private sealed class CrashingDevice(IBlockDevice inner, int writesBeforeCrash, bool transient = false) : IBlockDevice
    {
        public int Writes { get; private set; }
        public bool Crashed { get; private set; }
        public BlockDeviceCapabilities Capabilities => inner.Capabilities;
        public long Size => inner.Size;

        private void Step(bool write)
        {
            if (!Crashed && write && Writes == writesBeforeCrash)
            {
                Crashed = true;
                if (transient)
                {
                    Writes++;
                    throw new BlockDeviceException(DeviceError.InputOutput, "one failed write");
                }
            }
            if (Crashed && !transient) throw new BlockDeviceException(DeviceError.InputOutput, "crashed");
            if (write) Writes++;
        }

        public ValueTask ReadAsync(long o, Memory<byte> b, CancellationToken c = default) { Step(false); return inner.ReadAsync(o, b, c); }
        public ValueTask WriteAsync(long o, ReadOnlyMemory<byte> d, WriteOptions w, CancellationToken c = default) { Step(true); return inner.WriteAsync(o, d, w, c); }
        public ValueTask FlushAsync(CancellationToken c = default) { Step(false); return inner.FlushAsync(c); }
        public ValueTask TrimAsync(long o, long l, WriteOptions w, CancellationToken c = default) { Step(true); return inner.TrimAsync(o, l, w, c); }
        public ValueTask ZeroAsync(long o, long l, ZeroOptions z, CancellationToken c = default) { Step(true); return inner.ZeroAsync(o, l, z, c); }
        public ValueTask CacheAsync(long o, long l, CancellationToken c = default) => inner.CacheAsync(o, l, c);
        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long o, long l, CancellationToken c = default) => inner.GetExtentsAsync(o, l, c);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private static DiskHeader NewHeader(DataEncryptionKey dek, int sectorSize) => new()
    {
        Uuid = Guid.NewGuid(),
        LogicalSize = Size,
        SectorSize = sectorSize,
        PayloadOffset = Payload,
        Digest = KeyDigests.Create(dek),
        KeySlots = [Slot("old")],
        Created = DateTimeOffset.UtcNow,
    };

    private static KeySlot Slot(string version) => new()
    {
        KeyStore = "test", KeyName = "kek", KeyVersion = version, WrapAlgorithm = "none", WrappedDek = [1], Created = DateTimeOffset.UtcNow,
    };

    private static byte[] Pattern(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 13 + seed * 7 + 1)).ToArray();

    /// <summary>A disk with data, holes (never written, trimmed, a hole inside a chunk), started on a re-key to <see cref="_newDek"/>.</summary>
    private async Task<(string Path, byte[] Model)> CreateAsync(int sectorSize)
    {
        string path = Path.Combine(_dir, $"disk-{Guid.NewGuid():N}.img");
        SparseFile.CreateIfMissing(path, Payload + Size);
        var model = new byte[Size];
        await using (var file = SparseFile.Open(path))
        {
            var header = NewHeader(_oldDek, sectorSize);
            await DiskContainer.WriteAsync(file, header, 1);
            await using var disk = new EncryptedDisk(new NonDisposing(file), new XtsSectorCipher(_oldDek), Payload, Size, sectorSize, false);
            foreach (var (offset, length, seed) in new[] { (0, 600 * 1024, 1), (700 * 1024, 300 * 1024, 2), (1100 * 1024, 512, 3), (1536 * 1024, 512 * 1024, 4) })
            {
                byte[] data = Pattern(length, seed);
                await disk.WriteAsync(offset, data, WriteOptions.None);
                data.CopyTo(model, offset);
            }
            await disk.TrimAsync(64 * 1024, 8192, WriteOptions.None); // a hole inside the first chunk
            Array.Clear(model, 64 * 1024, 8192);
            await DiskContainer.WriteAsync(file, header with { Reencryption = DiskReencryption.Plan(KeyDigests.Create(_newDek), [Slot("new")], Chunk) }, 2);
        }
        return (path, model);
    }

    /// <summary>Opens the disk as the daemon does: by its header, with one DEK or both.</summary>
    private async Task<(EncryptedDisk Disk, OpenedHeader Header)> OpenAsync(string path, Func<IBlockDevice, IBlockDevice> wrap)
    {
        var file = SparseFile.Open(path);
        var opened = await DiskContainer.ReadAsync(file, path);
        var h = opened.Header;
        if (h.Reencryption is null)
        {
            Assert.That(KeyDigests.Matches(_newDek, h.Digest), Is.True, "a finished re-key names the new DEK");
            return (new EncryptedDisk(wrap(file), new XtsSectorCipher(_newDek), Payload, Size, h.SectorSize, false), opened);
        }
        Assert.That(KeyDigests.Matches(_oldDek, h.Digest) && KeyDigests.Matches(_newDek, h.Reencryption.Digest), Is.True);
        var disk = new EncryptedDisk(wrap(file), new XtsSectorCipher(_oldDek), Payload, Size, h.SectorSize, false);
        DiskReencryption.Attach(disk, new XtsSectorCipher(_newDek), h.Reencryption);
        return (disk, opened);
    }

    /// <summary>Runs the re-key to the end; between steps a client writes into the chunk just done and above the watermark.</summary>
    private static async Task RunAsync(EncryptedDisk disk, OpenedHeader opened, byte[] model, int sectorSize)
    {
        var gate = new GatedDevice(disk);
        var (header, sequence) = (opened.Header, opened.Sequence);
        var reencryption = disk.Reencryption!;
        int step = 0;
        while (!reencryption.IsComplete)
        {
            (header, sequence) = await reencryption.ConvertNextChunkAsync(gate, header, sequence);
            step++;
            long done = reencryption.Watermark;
            foreach (long offset in new[] { done - Chunk / 2 - 512, done + 3 * sectorSize, (done + Chunk + 4096) % Size })
            {
                if (offset < 0 || offset + 1024 > Size) continue;
                byte[] data = Pattern(1024, 50 + step); // partial sectors too: read-modify-write across the routing
                await gate.WriteAsync(offset, data, WriteOptions.None);
                data.CopyTo(model, offset);
            }
        }
    }

    private static async Task AssertReadsAsync(EncryptedDisk disk, byte[] model, string when)
    {
        var read = new byte[Size];
        await disk.ReadAsync(0, read);
        int first = Enumerable.Range(0, Size).FirstOrDefault(i => read[i] != model[i], -1);
        Assert.That(first, Is.EqualTo(-1), $"{when}: first wrong byte at {first}");
    }

    private static async Task AssertHolesStayHolesAsync(string path)
    {
        await using var file = SparseFile.Open(path);
        var stored = new byte[8192];
        await file.ReadAsync(Payload + 64 * 1024, stored);
        Assert.That(stored.All(b => b == 0), "the trimmed sectors are still holes");
        var extents = await file.GetExtentsAsync(Payload + 1024 * 1024 + 64 * 1024, 8192);
        Assert.That((extents[0].Flags & ExtentFlags.Hole) != 0, "a never-written range was not allocated by the re-key");
    }

    [TestCase(4096)]
    [TestCase(512)]
    public async Task ARekeyKeepsEveryByteAndEveryHoleAndEndsUnderTheNewDek(int sectorSize)
    {
        var (path, model) = await CreateAsync(sectorSize);
        var (disk, opened) = await OpenAsync(path, f => f);
        await RunAsync(disk, opened, model, sectorSize);
        Assert.That(disk.Reencryption, Is.Null);
        await AssertReadsAsync(disk, model, "after the re-key");
        await disk.DisposeAsync();

        var (reopened, header) = await OpenAsync(path, f => f);
        Assert.That((header.Header.Reencryption, header.Header.KeySlots.Single().KeyVersion), Is.EqualTo(((ReencryptionState?)null, "new")));
        await AssertReadsAsync(reopened, model, "reopened with the new DEK alone");
        await reopened.DisposeAsync();
        await AssertHolesStayHolesAsync(path);
    }

    [TestCase(4096)]
    [TestCase(512)]
    public async Task ACrashAfterAnyWriteLeavesTheDataReadableAndTheRekeyResumes(int sectorSize)
    {
        // How many writes a whole run makes (header copies, converted runs, client writes).
        var (probePath, probeModel) = await CreateAsync(sectorSize);
        CrashingDevice? counter = null;
        var (probe, probeHeader) = await OpenAsync(probePath, f => counter = new CrashingDevice(f, int.MaxValue));
        await RunAsync(probe, probeHeader, probeModel, sectorSize);
        await probe.DisposeAsync();
        int writes = counter!.Writes;
        Assert.That(writes, Is.GreaterThan(3 * (Size / Chunk)), "each chunk writes the header twice and its data");
        TestContext.Out.WriteLine($"{writes + 1} crash points, {sectorSize}-byte sectors");

        for (int crashAt = 0; crashAt <= writes; crashAt++)
        {
            var (path, model) = await CreateAsync(sectorSize);
            CrashingDevice? crashing = null;
            var (disk, opened) = await OpenAsync(path, f => crashing = new CrashingDevice(f, crashAt));
            try
            {
                await RunAsync(disk, opened, model, sectorSize);
            }
            catch (BlockDeviceException) when (crashing!.Crashed)
            {
            }
            await disk.DisposeAsync();

            var (recovered, header) = await OpenAsync(path, f => f);
            await AssertReadsAsync(recovered, model, $"after a crash at write {crashAt}");
            if (recovered.Reencryption is not null) await RunAsync(recovered, header, model, sectorSize);
            await AssertReadsAsync(recovered, model, $"resumed after a crash at write {crashAt}");
            await recovered.DisposeAsync();
            await AssertHolesStayHolesAsync(path);
            File.Delete(path);
        }
    }

    [Test]
    public async Task AFailedWriteMidChunkKeepsTheServedDiskReadableAndTheNextStepFinishesTheChunk()
    {
        int failAt;
        for (failAt = 0; ; failAt++)
        {
            var (path, model) = await CreateAsync(4096);
            CrashingDevice? failing = null;
            var (disk, opened) = await OpenAsync(path, f => failing = new CrashingDevice(f, failAt, transient: true));
            var gate = new GatedDevice(disk);
            var reencryption = disk.Reencryption!;
            var (header, sequence) = (opened.Header, opened.Sequence);
            while (!reencryption.IsComplete)
            {
                try
                {
                    (header, sequence) = await reencryption.ConvertNextChunkAsync(gate, header, sequence);
                }
                catch (BlockDeviceException)
                {
                    // The daemon keeps the header it had and tries the step again (both copies are rewritten).
                    await AssertReadsAsync(disk, model, $"served on after write {failAt} failed");
                }
            }
            await AssertReadsAsync(disk, model, $"finished after write {failAt} failed");
            await gate.DisposeAsync();
            var (reopened, _) = await OpenAsync(path, f => f);
            await AssertReadsAsync(reopened, model, $"reopened after write {failAt} failed");
            await reopened.DisposeAsync();
            File.Delete(path);
            if (!failing!.Crashed) break; // the run made fewer writes: every one has failed once
        }
        Assert.That(failAt, Is.GreaterThan(2 * (Size / Chunk)), "each chunk writes the header twice and its data");
    }

    [Test]
    public async Task ClosingTheDiskWaitsForTheStepInProgressAndRefusesTheNext()
    {
        var (path, _) = await CreateAsync(4096);
        var (disk, opened) = await OpenAsync(path, f => f);
        var gate = new GatedDevice(disk);
        var reencryption = disk.Reencryption!;
        var (header, sequence) = await reencryption.ConvertNextChunkAsync(gate, opened.Header, opened.Sequence);
        await gate.DisposeAsync();
        var refused = Assert.ThrowsAsync<BlockDeviceException>(async () => await reencryption.ConvertNextChunkAsync(gate, header, sequence))!;
        Assert.That(refused.Message, Does.Contain("closed"));
    }

    private sealed class NonDisposing(IBlockDevice inner) : IBlockDevice
    {
        public BlockDeviceCapabilities Capabilities => inner.Capabilities;
        public long Size => inner.Size;
        public ValueTask ReadAsync(long o, Memory<byte> b, CancellationToken c = default) => inner.ReadAsync(o, b, c);
        public ValueTask WriteAsync(long o, ReadOnlyMemory<byte> d, WriteOptions w, CancellationToken c = default) => inner.WriteAsync(o, d, w, c);
        public ValueTask FlushAsync(CancellationToken c = default) => inner.FlushAsync(c);
        public ValueTask TrimAsync(long o, long l, WriteOptions w, CancellationToken c = default) => inner.TrimAsync(o, l, w, c);
        public ValueTask ZeroAsync(long o, long l, ZeroOptions z, CancellationToken c = default) => inner.ZeroAsync(o, l, z, c);
        public ValueTask CacheAsync(long o, long l, CancellationToken c = default) => inner.CacheAsync(o, l, c);
        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long o, long l, CancellationToken c = default) => inner.GetExtentsAsync(o, l, c);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
