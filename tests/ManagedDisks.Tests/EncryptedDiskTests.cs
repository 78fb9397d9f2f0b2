using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;

namespace ManagedDisks.Tests;

public class EncryptedDiskTests
{
    private const long Payload = 1 << 20;
    private string _dir = null!;
    private SparseFile _file = null!;
    private DataEncryptionKey _dek = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-enc-").FullName;
        string path = Path.Combine(_dir, "d.img");
        SparseFile.CreateIfMissing(path, Payload + (4 << 20));
        _file = SparseFile.Open(path);
        _dek = DataEncryptionKey.Generate();
    }

    [TearDown]
    public async Task TearDown()
    {
        await _file.DisposeAsync();
        _dek.Dispose();
        Directory.Delete(_dir, true);
    }

    private EncryptedDisk Disk(int sectorSize = 4096, bool detectZeroes = false) =>
        new(new NonDisposing(_file), new XtsSectorCipher(_dek), Payload, 4 << 20, sectorSize, detectZeroes);

    private static byte[] Pattern(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed)).ToArray();

    [Test]
    public void AdvertisesSectorSizeAsPreferredAnd512AsMinimum()
    {
        var caps = Disk().Capabilities;
        Assert.That((caps.MinimumBlockSize, caps.PreferredBlockSize), Is.EqualTo((512u, 4096u)));
    }

    [TestCase(0, 4096)]
    [TestCase(512, 512)]
    [TestCase(3584, 1024)]
    [TestCase(1536, 65536 + 512)]
    public async Task AlignedAndUnalignedWritesRoundTripAndPreserveNeighbours(int offset, int length)
    {
        var disk = Disk();
        byte[] background = Pattern(3 * 65536, 1);
        await disk.WriteAsync(0, background, WriteOptions.None);
        byte[] data = Pattern(length, 77);
        await disk.WriteAsync(offset, data, WriteOptions.None);

        var read = new byte[background.Length];
        await disk.ReadAsync(0, read);
        byte[] expected = (byte[])background.Clone();
        data.CopyTo(expected, offset);
        Assert.That(read, Is.EqualTo(expected));

        var stored = new byte[4096];
        await _file.ReadAsync(Payload, stored);
        Assert.That(stored, Is.Not.EqualTo(expected[..4096]), "the payload must be stored encrypted");
    }

    [Test]
    public async Task HolesReadAsZerosAndZeroingPunchesThem()
    {
        var disk = Disk();
        var read = new byte[8192];
        await disk.ReadAsync(0, read);
        Assert.That(read, Has.All.EqualTo(0), "never-written sectors");

        await disk.WriteAsync(0, Pattern(65536, 5), WriteOptions.None);
        await disk.ZeroAsync(4096, 8192, ZeroOptions.FastOnly);
        await disk.TrimAsync(16384, 4096, WriteOptions.None);
        await disk.ZeroAsync(20480 + 512, 1024, ZeroOptions.None); // partial sector: read-modify-write
        var all = new byte[65536];
        await disk.ReadAsync(0, all);
        Assert.That(all[4096..12288], Has.All.EqualTo(0));
        Assert.That(all[16384..20480], Has.All.EqualTo(0));
        Assert.That(all[(20480 + 512)..(20480 + 1536)], Has.All.EqualTo(0));
        Assert.That(all[20480..(20480 + 512)], Is.EqualTo(Pattern(65536, 5)[20480..(20480 + 512)]));

        var extents = await disk.GetExtentsAsync(0, 65536);
        Assert.That(extents[0], Is.EqualTo(new Extent(0, 4096, ExtentFlags.Data)));
        Assert.That(extents[1], Is.EqualTo(new Extent(4096, 8192, ExtentFlags.Hole | ExtentFlags.Zero)));
    }

    [Test]
    public void FastZeroOfAPartialSectorIsNotSupported()
    {
        var e = Assert.ThrowsAsync<BlockDeviceException>(async () => await Disk().ZeroAsync(512, 512, ZeroOptions.FastOnly))!;
        Assert.That(e.Error, Is.EqualTo(DeviceError.NotSupported));
    }

    [Test]
    public async Task TrimRoundsInwardsAndKeepsPartialSectors()
    {
        var disk = Disk();
        byte[] data = Pattern(16384, 9);
        await disk.WriteAsync(0, data, WriteOptions.None);
        await disk.TrimAsync(512, 4096, WriteOptions.None); // covers no whole sector
        var read = new byte[16384];
        await disk.ReadAsync(0, read);
        Assert.That(read, Is.EqualTo(data));
    }

    [Test]
    public async Task DetectZeroesTurnsZeroSectorsIntoHoles()
    {
        var disk = Disk(detectZeroes: true);
        byte[] data = new byte[16384];
        Pattern(4096, 3).CopyTo(data, 8192);
        await disk.WriteAsync(0, data, WriteOptions.None);
        var extents = await disk.GetExtentsAsync(0, 16384);
        Assert.That(extents.Select(e => (e.Offset, e.Length, e.Flags)), Is.EqualTo(new[]
        {
            (0L, 8192L, ExtentFlags.Hole | ExtentFlags.Zero), (8192L, 4096L, ExtentFlags.Data), (12288L, 4096L, ExtentFlags.Hole | ExtentFlags.Zero),
        }));
        var read = new byte[16384];
        await disk.ReadAsync(0, read);
        Assert.That(read, Is.EqualTo(data));
    }

    [Test]
    public async Task FiveHundredTwelveByteSectorsUseTheirOwnTweaks()
    {
        var small = Disk(sectorSize: 512);
        byte[] data = Pattern(4096, 11);
        await small.WriteAsync(0, data, WriteOptions.None);
        var read = new byte[4096];
        await small.ReadAsync(0, read);
        Assert.That(read, Is.EqualTo(data));
        // The same bytes seen with 4096-byte units decrypt differently: the unit is part of the format.
        var large = new byte[4096];
        await Disk(sectorSize: 4096).ReadAsync(0, large);
        Assert.That(large, Is.Not.EqualTo(data));
    }

    /// <summary>Lets several filters share one test file.</summary>
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
