using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Tests;

public class HeaderFormatTests
{
    private static DiskHeader NewHeader(DataEncryptionKey dek) => new()
    {
        Uuid = Guid.NewGuid(),
        LogicalSize = 1 << 20,
        SectorSize = 4096,
        PayloadOffset = HeaderCodec.DefaultPayloadOffset,
        Digest = KeyDigests.Create(dek),
        KeySlots = [new KeySlot { KeyStore = "platform", KeyName = "k", KeyVersion = "1", WrapAlgorithm = "RSA-OAEP-256", WrappedDek = [1, 2, 3], Created = DateTimeOffset.UnixEpoch }],
        Created = DateTimeOffset.UnixEpoch,
    };

    private static byte[] Area(byte[] encoded)
    {
        var area = new byte[HeaderCodec.CopyArea];
        encoded.CopyTo(area, 0);
        return area;
    }

    [Test]
    public void EncodesAndDecodesEveryField()
    {
        using var dek = DataEncryptionKey.Generate();
        var header = NewHeader(dek);
        var decoded = HeaderCodec.TryDecode(Area(HeaderCodec.Encode(header, 1, 42)), 1, out string? problem);
        Assert.That(problem, Is.Null);
        Assert.That(decoded!.Value.Sequence, Is.EqualTo(42UL));
        Assert.That(decoded.Value.Header.Uuid, Is.EqualTo(header.Uuid));
        Assert.That(decoded.Value.Header.KeySlots.Single().WrappedDek, Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(decoded.Value.Header.Digest.Value, Is.EqualTo(header.Digest.Value));
    }

    [Test]
    public void EveryFlippedByteOfACopyIsDetected()
    {
        using var dek = DataEncryptionKey.Generate();
        byte[] encoded = HeaderCodec.Encode(NewHeader(dek), 0, 7);
        int jsonEnd = 4096 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(encoded.AsSpan(12));
        foreach (int position in Enumerable.Range(0, 64).Concat(Enumerable.Range(4096, jsonEnd - 4096)))
        {
            byte[] area = Area(encoded);
            area[position] ^= 0x01;
            Assert.That(HeaderCodec.TryDecode(area, 0, out string? problem), Is.Null, $"byte {position}");
            Assert.That(problem, Is.Not.Null);
        }
    }

    [Test]
    public void CopyInTheWrongPlaceIsRejected()
    {
        using var dek = DataEncryptionKey.Generate();
        Assert.That(HeaderCodec.TryDecode(Area(HeaderCodec.Encode(NewHeader(dek), 0, 1)), 1, out string? problem), Is.Null);
        Assert.That(problem, Does.Contain("copy index"));
    }

    [Test]
    public void DigestAcceptsTheRightKeyOnly()
    {
        using var dek = DataEncryptionKey.Generate();
        using var other = DataEncryptionKey.Generate();
        var digest = KeyDigests.Create(dek);
        Assert.That(KeyDigests.Matches(dek, digest), Is.True);
        Assert.That(KeyDigests.Matches(other, digest), Is.False);
    }

    [Test]
    public async Task OpeningPrefersTheHighestValidSequenceAndReportsTheStaleCopy()
    {
        string dir = Directory.CreateTempSubdirectory("md-header-").FullName;
        try
        {
            string path = Path.Combine(dir, "d.img");
            SparseFile.CreateIfMissing(path, HeaderCodec.DefaultPayloadOffset + (1 << 20));
            await using var file = SparseFile.Open(path);
            using var dek = DataEncryptionKey.Generate();
            var header = NewHeader(dek);
            await DiskContainer.WriteAsync(file, header, 5);
            // A crash after copy 0 of the next update: copy 0 newer than copy 1.
            await file.WriteAsync(0, HeaderCodec.Encode(header with { LogicalSize = 4096 * 2 }, 0, 6), WriteOptions.None);

            var opened = await DiskContainer.ReadAsync(file, path);
            Assert.That(opened.Sequence, Is.EqualTo(6UL));
            Assert.That(opened.Header.LogicalSize, Is.EqualTo(8192));
            Assert.That(opened.CopyProblems[0], Is.Null);
            Assert.That(opened.CopyProblems[1], Does.Contain("older sequence 5"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
