using ManagedDisks.BlockDevices;

namespace ManagedDisks.Tests;

public class SparseFileTests
{
    private string _dir = null!;
    private string _path = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-sparse-").FullName;
        _path = Path.Combine(_dir, "disk.img");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static byte[] Pattern(int length, byte seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 7 + seed)).ToArray();

    [Test]
    public async Task CreatesSparseAndRoundTrips()
    {
        Assert.That(SparseFile.CreateIfMissing(_path, 16 << 20), Is.True);
        Assert.That(SparseFile.CreateIfMissing(_path, 16 << 20), Is.False, "an existing file is kept");
        await using var file = SparseFile.Open(_path);
        Assert.That(file.Size, Is.EqualTo(16 << 20));

        var extents = await file.GetExtentsAsync(0, file.Size);
        Assert.That(extents, Is.EqualTo(new[] { new Extent(0, 16 << 20, ExtentFlags.Hole | ExtentFlags.Zero) }));

        byte[] data = Pattern(8192, 3);
        await file.WriteAsync(1 << 20, data, WriteOptions.Fua);
        var read = new byte[8192];
        await file.ReadAsync(1 << 20, read);
        Assert.That(read, Is.EqualTo(data));

        extents = await file.GetExtentsAsync(0, file.Size);
        Assert.That(extents.Select(e => e.Flags), Is.EqualTo(new[] { ExtentFlags.Hole | ExtentFlags.Zero, ExtentFlags.Data, ExtentFlags.Hole | ExtentFlags.Zero }));
        Assert.That(extents[1], Is.EqualTo(new Extent(1 << 20, 8192, ExtentFlags.Data)));
    }

    [Test]
    public async Task TrimAndZeroPunchHolesAndReadAsZeros()
    {
        SparseFile.CreateIfMissing(_path, 4 << 20);
        await using var file = SparseFile.Open(_path);
        await file.WriteAsync(0, Pattern(1 << 20, 1), WriteOptions.None);
        await file.TrimAsync(0, 64 * 1024, WriteOptions.None);
        await file.ZeroAsync(64 * 1024, 64 * 1024, ZeroOptions.FastOnly);
        await file.ZeroAsync(128 * 1024, 64 * 1024, ZeroOptions.NoHole);

        var read = new byte[192 * 1024];
        await file.ReadAsync(0, read);
        Assert.That(read.All(b => b == 0), Is.True);

        var extents = await file.GetExtentsAsync(0, 128 * 1024);
        Assert.That(extents, Is.EqualTo(new[] { new Extent(0, 128 * 1024, ExtentFlags.Hole | ExtentFlags.Zero) }));
        await file.FlushAsync();
    }

    [Test]
    public async Task ASecondOpenOfTheSameFileIsRefusedAndTheFirstKeepsWorking()
    {
        SparseFile.CreateIfMissing(_path, 1 << 20);
        await using var first = SparseFile.Open(_path);

        var e = Assert.Throws<BlockDeviceException>(() => SparseFile.Open(_path))!;
        Assert.That(e.Message, Does.Contain("locked").And.Contain(_path));

        await first.WriteAsync(0, Pattern(512, 9), WriteOptions.Fua);
        var read = new byte[512];
        await first.ReadAsync(0, read);
        Assert.That(read, Is.EqualTo(Pattern(512, 9)));
    }

    [Test]
    public void OpeningAMissingFileSaysSo()
    {
        var e = Assert.Throws<BlockDeviceException>(() => SparseFile.Open(_path))!;
        Assert.That(e.Message, Does.Contain("does not exist"));
    }
}
